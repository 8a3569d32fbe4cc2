import type { Command } from 'commander';
import type { Tree, TreeEntry } from '../../repo/types.js';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { nodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

/** One entry as `ls --json` prints it (one JSON array; bigints and bytes as strings). */
export interface LsEntryJson {
  path: string;
  /** Exact name bytes as hex (for names that are not UTF-8). */
  pathHex: string;
  type: TreeEntry['type'];
  mode: string;
  size: number;
  mtime: string;
  uid: number;
  gid: number;
  linkTarget?: string;
}

/**
 * `nightjar ls SNAPSHOT[:PATH] [--json] [--job JOB]`: every entry at and below PATH
 * (default: the whole snapshot), depth-first in name order, like `ls -l`. Streams its
 * output (a million entries stay within bounded memory; --json writes one array).
 */
export function registerLs(program: Command, env: CliEnv): void {
  program
    .command('ls')
    .description('list the entries of a snapshot, or of a path in it')
    .argument('<snapshot>', 'SNAPSHOT[:PATH] (id, unique id prefix or latest)')
    .addOption(nodeDirOption())
    .option('--job <job>', 'with latest: the newest snapshot of JOB')
    .option('--json', 'print one JSON array on stdout')
    .action(async (arg: string, opts: { nodeDirectory: string; job?: string; json?: boolean }) => {
      const [{ loadNodeConfig, parseSnapshotArg, withSnapshot }, { resolveSnapshotPath, RestorePathError }, { displayPath, joinRel }] = await Promise.all([
        import('../open-target.js'),
        import('../../jobs/restore.js'),
        import('../../jobs/walk.js'),
      ]);
      const layout = nodeDirLayout(opts.nodeDirectory);
      const config = await loadNodeConfig(layout);
      const { ref, path } = parseSnapshotArg(arg);
      await withSnapshot(config, ref, { ...(opts.job ? { job: opts.job } : {}), clock: env.clock, workers: 1 }, async ({ repo }, snap) => {
        let first = true;
        const emit = (rel: Buffer, e: TreeEntry) => {
          const shown = '/' + displayPath(rel);
          if (opts.json) {
            const j: LsEntryJson = {
              path: shown,
              pathHex: rel.toString('hex'),
              type: e.type,
              mode: (e.mode & 0o7777).toString(8).padStart(4, '0'),
              size: e.size,
              mtime: nsToIso(e.mtimeNs),
              uid: e.uid,
              gid: e.gid,
              ...(e.linkTarget ? { linkTarget: displayPath(e.linkTarget) } : {}),
            };
            env.stdout.write((first ? '[\n  ' : ',\n  ') + JSON.stringify(j));
            first = false;
          } else {
            const link = e.linkTarget ? ` -> ${displayPath(e.linkTarget)}` : '';
            env.stdout.write(
              `${modeString(e)} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${String(e.size).padStart(12)} ` +
                `${nsToIso(e.mtimeNs).replace(/\.\d+Z$/, 'Z')} ${shown}${link}\n`,
            );
          }
        };
        const walkTree = async (treeId: string, rel: Buffer): Promise<void> => {
          const tree: Tree = await repo.loadTree(treeId);
          for (const e of tree.entries) {
            const p = joinRel(rel, e.name);
            emit(p, e);
            if (e.type === 'dir' && e.subtree) await walkTree(e.subtree, p);
          }
        };
        let resolved;
        try {
          resolved = await resolveSnapshotPath(repo, snap.tree, path);
        } catch (err) {
          if (err instanceof RestorePathError) throw new CliExit(EXIT.failure, `${snap.id.slice(0, 12)}:${err.message}`);
          throw err;
        }
        if (resolved.kind === 'root') await walkTree(resolved.tree, Buffer.alloc(0));
        else {
          emit(resolved.path, resolved.entry);
          if (resolved.entry.type === 'dir' && resolved.entry.subtree) await walkTree(resolved.entry.subtree, resolved.path);
        }
        if (opts.json) env.stdout.write(first ? '[]\n' : '\n]\n');
      });
    });
}

function nsToIso(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const d = new Date(ms);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return d.toISOString().replace(/\.\d+Z$/, `.${frac}Z`);
}

const TYPE_CHAR: Record<TreeEntry['type'], string> = {
  file: '-',
  dir: 'd',
  symlink: 'l',
  fifo: 'p',
  socket: 's',
  chardev: 'c',
  blockdev: 'b',
};

/** `drwxr-xr-x` from a type and mode bits (setuid/setgid/sticky shown as s/S, t/T). */
export function modeString(e: Pick<TreeEntry, 'type' | 'mode'>): string {
  const m = e.mode;
  const rwx = (bits: number, special: boolean, ch: string) =>
    (bits & 4 ? 'r' : '-') + (bits & 2 ? 'w' : '-') + (special ? (bits & 1 ? ch : ch.toUpperCase()) : bits & 1 ? 'x' : '-');
  return (
    TYPE_CHAR[e.type] +
    rwx((m >> 6) & 7, (m & 0o4000) !== 0, 's') +
    rwx((m >> 3) & 7, (m & 0o2000) !== 0, 's') +
    rwx(m & 7, (m & 0o1000) !== 0, 't')
  );
}
