import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, readdir, readlink, rm, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Declarative fixture trees (after restic's TestDir): a test writes what the tree looks
 * like, `createTree` makes it on disk, `compareTrees` says how two trees on disk differ.
 * Names may be Buffers (non-UTF-8 bytes); paths are built as Buffers throughout.
 */
export type FixtureNode =
  | { file: string | Buffer; mode?: number; mtimeMs?: number }
  | { sparse: number; mode?: number; mtimeMs?: number }
  | { dir: FixtureDir; mode?: number; mtimeMs?: number }
  | { symlink: string | Buffer }
  | { hardlink: string }
  | { fifo: true; mode?: number };

/** A directory: either a record of UTF-8 names or a list of [name bytes, node]. */
export type FixtureDir = Record<string, FixtureNode> | [string | Buffer, FixtureNode][];

const SLASH = Buffer.from('/');

function bpath(parent: Buffer, name: string | Buffer): Buffer {
  return Buffer.concat([parent, SLASH, typeof name === 'string' ? Buffer.from(name) : name]);
}

/** A fresh temporary directory under os.tmpdir(). */
export function tempDir(prefix = 'nightjar-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** Removes a temporary directory tree (ignores errors). */
export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true }).catch(() => {});
}

/**
 * Creates `spec` inside the existing directory `root`. Hard links name their target by
 * a slash path relative to `root` (created earlier in the spec's order). Directory
 * mtimes are set after their contents.
 */
export async function createTree(root: string, spec: FixtureDir): Promise<void> {
  await createDir(Buffer.from(root), Buffer.from(root), spec);
}

async function createDir(root: Buffer, dir: Buffer, spec: FixtureDir): Promise<void> {
  const entries: [string | Buffer, FixtureNode][] = Array.isArray(spec) ? spec : Object.entries(spec);
  for (const [name, node] of entries) {
    const p = bpath(dir, name);
    if ('file' in node) {
      await writeFile(p, node.file);
      if (node.mode !== undefined) await chmod(p, node.mode);
      if (node.mtimeMs !== undefined) await utimes(p, node.mtimeMs / 1000, node.mtimeMs / 1000);
    } else if ('sparse' in node) {
      await writeFile(p, '');
      await truncate(p.toString(), node.sparse);
      if (node.mode !== undefined) await chmod(p, node.mode);
      if (node.mtimeMs !== undefined) await utimes(p, node.mtimeMs / 1000, node.mtimeMs / 1000);
    } else if ('dir' in node) {
      await mkdir(p);
      await createDir(root, p, node.dir);
      if (node.mode !== undefined) await chmod(p, node.mode);
      if (node.mtimeMs !== undefined) await utimes(p, node.mtimeMs / 1000, node.mtimeMs / 1000);
    } else if ('symlink' in node) {
      await symlink(node.symlink, p);
    } else if ('hardlink' in node) {
      await link(bpath(root, node.hardlink), p);
    } else {
      // mkfifo needs a string path: make it under an ASCII name, then rename (exact bytes).
      const tmp = join(root.toString(), `.fifo-${process.pid}-${Math.random().toString(36).slice(2)}`);
      execFileSync('mkfifo', ['-m', (node.mode ?? 0o644).toString(8), tmp]);
      const { rename } = await import('node:fs/promises');
      await rename(tmp, p);
    }
  }
}

/** SHA-256 of a file, streamed (multi-GiB sparse files stay cheap in memory). */
export function hashFile(path: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path, { highWaterMark: 4 << 20 })
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

export interface CompareOptions {
  /** Compare mtimes of files, symlinks and dirs (default true). */
  readonly mtimes?: boolean;
  /** Allowed mtime difference in ns (restore sets times through a double: ~µs). */
  readonly mtimeToleranceNs?: bigint;
  /** Compare uid/gid (default false). */
  readonly owners?: boolean;
  /** Compare hard-link groups (default true). */
  readonly hardLinks?: boolean;
}

/**
 * Differences between trees `a` and `b` (empty = equal): names (exact bytes), types,
 * permission bits, sizes, content (streaming hash), symlink targets, mtimes, hard-link
 * groups. The roots' own metadata is not compared.
 */
export async function compareTrees(a: string, b: string, opts: CompareOptions = {}): Promise<string[]> {
  const diffs: string[] = [];
  const linksA = new Map<string, string>();
  const linksB = new Map<string, string>();
  await compareDir(Buffer.from(a), Buffer.from(b), '', diffs, opts, linksA, linksB);
  return diffs;
}

async function compareDir(
  a: Buffer,
  b: Buffer,
  rel: string,
  diffs: string[],
  opts: CompareOptions,
  linksA: Map<string, string>,
  linksB: Map<string, string>,
): Promise<void> {
  const na = (await readdir(a, { encoding: 'buffer' })).sort(Buffer.compare);
  const nb = (await readdir(b, { encoding: 'buffer' })).sort(Buffer.compare);
  const keysB = new Set(nb.map((n) => n.toString('latin1')));
  const keysA = new Set(na.map((n) => n.toString('latin1')));
  for (const n of na) if (!keysB.has(n.toString('latin1'))) diffs.push(`${rel}/${n.toString('latin1')}: only in first`);
  for (const n of nb) if (!keysA.has(n.toString('latin1'))) diffs.push(`${rel}/${n.toString('latin1')}: only in second`);
  const tol = opts.mtimeToleranceNs ?? 2000n;
  for (const n of na) {
    if (!keysB.has(n.toString('latin1'))) continue;
    const pa = bpath(a, n);
    const pb = bpath(b, n);
    const r = `${rel}/${n.toString('latin1')}`;
    const sa = await lstat(pa, { bigint: true });
    const sb = await lstat(pb, { bigint: true });
    const ta = kind(sa);
    const tb = kind(sb);
    if (ta !== tb) {
      diffs.push(`${r}: type ${ta} vs ${tb}`);
      continue;
    }
    if (ta !== 'symlink' && (sa.mode & 0o7777n) !== (sb.mode & 0o7777n)) {
      diffs.push(`${r}: mode ${(sa.mode & 0o7777n).toString(8)} vs ${(sb.mode & 0o7777n).toString(8)}`);
    }
    if (opts.owners && (sa.uid !== sb.uid || sa.gid !== sb.gid)) diffs.push(`${r}: owner differs`);
    if (opts.mtimes !== false) {
      const d = sa.mtimeNs - sb.mtimeNs;
      if (d > tol || d < -tol) diffs.push(`${r}: mtime ${sa.mtimeNs} vs ${sb.mtimeNs}`);
    }
    if (ta === 'file') {
      if (sa.size !== sb.size) diffs.push(`${r}: size ${sa.size} vs ${sb.size}`);
      else if ((await hashFile(pa)) !== (await hashFile(pb))) diffs.push(`${r}: content differs`);
      if (opts.hardLinks !== false && (sa.nlink > 1n || sb.nlink > 1n)) {
        const ka = `${sa.dev}:${sa.ino}`;
        const kb = `${sb.dev}:${sb.ino}`;
        const fa = linksA.get(ka);
        const fb = linksB.get(kb);
        if (fa === undefined) linksA.set(ka, r);
        if (fb === undefined) linksB.set(kb, r);
        if ((fa ?? r) !== (fb ?? r)) diffs.push(`${r}: hard link to ${fa ?? '(none)'} vs ${fb ?? '(none)'}`);
      }
    } else if (ta === 'symlink') {
      const la = await readlink(pa, { encoding: 'buffer' });
      const lb = await readlink(pb, { encoding: 'buffer' });
      if (!la.equals(lb)) diffs.push(`${r}: link target ${la.toString('latin1')} vs ${lb.toString('latin1')}`);
    } else if (ta === 'dir') {
      await compareDir(pa, pb, r, diffs, opts, linksA, linksB);
    }
  }
}

function kind(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean; isFIFO(): boolean; isSocket(): boolean }): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'device';
}
