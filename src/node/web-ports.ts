import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { isAbsolute, posix, relative, resolve } from 'node:path';
import type { BackupDb } from '../backupdb/index.js';
import { resolveSnapshotPath, restoreSnapshot, RestorePathError } from '../jobs/restore.js';
import { displayPath } from '../jobs/walk.js';
import { RepoNotFoundError, SnapshotNotFoundError } from '../repo/errors.js';
import { Repository } from '../repo/repository.js';
import type { Snapshot } from '../repo/types.js';
import type { StorageService } from '../server/storage-service.js';
import { NotFoundError } from '../store/store.js';
import {
  WebPortError,
  type NodeData,
  type RestoreTask,
  type SnapshotBrowser,
  type SnapshotSummary,
  type StorageView,
} from '../wui/controls.js';
import type { Clock } from './clock.js';
import type { JobConfig, NodeConfig } from './config/types.js';
import { formatBytes, formatDuration } from './config/units.js';
import { targetCaches } from './key-cache.js';
import type { NodeDirLayout } from './node-dir.js';
import { openTargetStore, readPassphrase } from './open-target.js';

/** Run history, event log and job settings from the backupdb and the config in force. */
export function createNodeData(opts: { config: () => NodeConfig; db: BackupDb }): NodeData {
  return {
    async runs(job, limit) {
      return (await opts.db.runs.listRuns(job, limit)).map((r) => ({
        id: r.id,
        job: r.job,
        target: r.target,
        kind: r.kind,
        startedAt: r.startedAt.toISOString(),
        endedAt: r.endedAt?.toISOString() ?? null,
        result: r.result,
        snapshotId: r.snapshotId,
        error: r.error,
        stats: { ...r.stats },
      }));
    },
    async events(q) {
      const list = await opts.db.events.listEvents({
        ...(q.job !== undefined ? { job: q.job } : {}),
        limit: q.limit,
        ...(q.beforeId !== undefined ? { beforeId: q.beforeId } : {}),
      });
      return list.map((e) => ({ id: e.id, at: e.at.toISOString(), job: e.job, level: e.level, kind: e.kind, message: e.message }));
    },
    jobConfig(job) {
      const j = opts.config().jobs[job];
      return j ? jobConfigSummary(j) : null;
    },
  };
}

/**
 * The settings of a job in node.cfg terms. Hook commands are only said to be set: a
 * command line may carry a credential, and the page never shows one.
 */
export function jobConfigSummary(j: JobConfig): Record<string, string> {
  const out: Record<string, string> = {
    source: j.source,
    target: `${j.target.alias}:${j.target.name}`,
    [j.schedule ? 'schedule' : 'frequency']: j.schedule ?? formatDuration(j.frequencyMs ?? 0),
    allowed_times: j.allowedTimes.windows.length ? j.allowedTimes.spec : 'any time',
    timezone: j.timezone,
    bandwidth: j.bandwidth?.spec ?? 'off',
    read_bandwidth: j.readBandwidth?.spec ?? 'off',
    budget: j.budget?.spec ?? 'none',
    exclude: j.exclude.length ? j.exclude.join(', ') : 'none',
    max_file_size: j.maxFileSize === null ? 'none' : formatBytes(j.maxFileSize),
    min_file_age: j.minFileAgeMs === null ? 'none' : formatDuration(j.minFileAgeMs),
    one_file_system: String(j.oneFileSystem),
    keep: j.keep?.spec ?? 'keep everything',
    pre_command: j.preCommand ? 'set' : 'none',
    post_command: j.postCommand ? 'set' : 'none',
    on_failure: j.onFailure ? 'set' : 'none',
    enabled: String(j.enabled),
  };
  return out;
}

/** At most this many restores run at once from the page. */
const MAX_RUNNING_RESTORES = 2;
/** Restores remembered for the page. */
const MAX_RESTORES_KEPT = 50;

/**
 * Snapshots of the configured targets for the page. Each call opens the target's
 * repository (never initialises one) and closes it again, so a browse never holds a
 * repository a backup is writing to. Restores run in the background into a directory
 * that is absolute, outside the node directory, and missing or empty.
 */
export function createSnapshotBrowser(opts: { config: () => NodeConfig; clock: Clock; layout: NodeDirLayout }): SnapshotBrowser {
  const tasks: Array<RestoreTask & { -readonly [K in 'state' | 'endedAt' | 'files' | 'bytes' | 'warnings' | 'error']: RestoreTask[K] }> = [];
  let nextId = 1;

  async function withRepo<T>(alias: string, fn: (repo: Repository) => Promise<T>): Promise<T> {
    const target = Object.hasOwn(opts.config().targets, alias) ? opts.config().targets[alias] : undefined;
    if (!target) throw new WebPortError(404, `no target named ${JSON.stringify(alias)}`);
    const store = await openTargetStore(target, { clock: opts.clock });
    try {
      const passphrase = await readPassphrase(target.passphraseFile);
      let repo: Repository;
      try {
        repo = await Repository.open(store, passphrase, {
          clock: opts.clock,
          workers: 0,
          ...targetCaches(target.passphraseFile, passphrase, store.location),
        });
      } catch (err) {
        if (err instanceof RepoNotFoundError) throw new WebPortError(404, `target ${alias} has no repository yet`);
        throw err;
      }
      try {
        return await fn(repo);
      } finally {
        await repo.close().catch(() => {});
      }
    } finally {
      await store.close().catch(() => {});
    }
  }

  async function loadSnapshot(repo: Repository, id: string): Promise<Snapshot> {
    if (!/^[0-9a-f]{64}$/.test(id)) throw new WebPortError(404, 'no such snapshot');
    try {
      return await repo.loadSnapshot(id);
    } catch (err) {
      if (err instanceof SnapshotNotFoundError || err instanceof NotFoundError) throw new WebPortError(404, 'no such snapshot');
      throw err;
    }
  }

  async function resolve_(repo: Repository, snap: Snapshot, path: Buffer) {
    checkSnapshotPath(path);
    try {
      return await resolveSnapshotPath(repo, snap.tree, path);
    } catch (err) {
      if (err instanceof RestorePathError) throw new WebPortError(404, err.message);
      throw err;
    }
  }

  return {
    async targets() {
      const out = [];
      for (const t of Object.values(opts.config().targets)) {
        try {
          const snaps = await withRepo(t.alias, (repo) => repo.listSnapshots());
          snaps.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
          out.push({ alias: t.alias, kind: t.kind, snapshots: snaps.map(summary), error: null });
        } catch (err) {
          out.push({ alias: t.alias, kind: t.kind, snapshots: [], error: stripCredentials((err as Error).message) });
        }
      }
      return out;
    },

    list(target, snapshot, path) {
      return withRepo(target, async (repo) => {
        const snap = await loadSnapshot(repo, snapshot);
        const at = await resolve_(repo, snap, path);
        let tree: string;
        if (at.kind === 'root') tree = at.tree;
        else if (at.entry.type === 'dir' && at.entry.subtree) tree = at.entry.subtree;
        else throw new WebPortError(400, `${displayPath(at.path)} is not a directory`);
        const entries = (await repo.loadTree(tree)).entries.map((e) => ({
          name: e.name,
          type: e.type,
          size: e.size,
          mode: e.mode,
          mtime: new Date(Number(e.mtimeNs / 1_000_000n)).toISOString(),
          linkTarget: e.linkTarget ?? null,
        }));
        return { snapshot: summary(snap), entries };
      });
    },

    download(target, snapshot, path, sink) {
      return withRepo(target, async (repo) => {
        const snap = await loadSnapshot(repo, snapshot);
        const at = await resolve_(repo, snap, path);
        if (at.kind === 'root' || at.entry.type !== 'file') throw new WebPortError(400, 'only a regular file can be downloaded');
        sink.start({ name: at.entry.name, size: at.entry.size });
        await repo.readFileContent(at.entry.content ?? [], (chunk) => sink.write(chunk));
      });
    },

    async startRestore(req) {
      checkSnapshotPath(req.path);
      const dest = await checkRestoreDest(req.dest, opts.layout.root);
      if (tasks.filter((t) => t.state === 'running').length >= MAX_RUNNING_RESTORES) {
        throw new WebPortError(409, `${MAX_RUNNING_RESTORES} restores are running already; wait for one to finish`);
      }
      // Resolve before answering, so a wrong snapshot or path is a 404 now, not a failed task later.
      await withRepo(req.target, async (repo) => resolve_(repo, await loadSnapshot(repo, req.snapshot), req.path));
      const task = {
        id: nextId++,
        target: req.target,
        snapshot: req.snapshot,
        path: req.path.length ? displayPath(req.path) : '/',
        dest,
        state: 'running' as RestoreTask['state'],
        startedAt: opts.clock.now().toISOString(),
        endedAt: null as string | null,
        files: 0,
        bytes: 0,
        warnings: 0,
        error: null as string | null,
      };
      tasks.unshift(task);
      tasks.splice(MAX_RESTORES_KEPT);
      void withRepo(req.target, async (repo) => {
        const snap = await loadSnapshot(repo, req.snapshot);
        return restoreSnapshot(repo, snap, req.path, dest, {
          onProgress: (s) => {
            task.files = s.files;
            task.bytes = s.bytes;
            task.warnings = s.warningCount;
          },
        });
      }).then(
        (s) => {
          Object.assign(task, { state: 'done', files: s.files, bytes: s.bytes, warnings: s.warningCount, endedAt: opts.clock.now().toISOString() });
        },
        (err: Error) => {
          Object.assign(task, { state: 'failed', error: stripCredentials(err.message), endedAt: opts.clock.now().toISOString() });
        },
      );
      return { ...task };
    },

    restores: () => tasks.map((t) => ({ ...t })),
  };
}

function summary(s: Snapshot): SnapshotSummary {
  return {
    id: s.id,
    time: s.time,
    host: s.host,
    job: s.job,
    target: s.target,
    source: s.source,
    tags: s.tags,
    parent: s.parent ?? null,
    stats: s.stats && typeof s.stats === 'object' ? { ...(s.stats as Record<string, unknown>) } : null,
  };
}

/** A path inside a snapshot may not climb (`..`) or hold a NUL byte. */
function checkSnapshotPath(path: Buffer): void {
  if (path.includes(0)) throw new WebPortError(400, 'a path may not contain a NUL byte');
  for (const part of path.toString('latin1').split('/')) {
    if (part === '..') throw new WebPortError(400, 'a path may not contain ".."');
  }
}

/**
 * A restore destination must be absolute, without `.`/`..` components, outside the node
 * directory (its keys and database), and missing or an empty directory: a restore from
 * the page never overwrites anything.
 */
export async function checkRestoreDest(dest: string, nodeRoot: string): Promise<string> {
  if (dest.includes('\0') || !isAbsolute(dest)) throw new WebPortError(400, 'the destination must be an absolute path on the node');
  if (dest.split(/[\\/]/).some((p) => p === '..' || p === '.')) throw new WebPortError(400, 'the destination may not contain "." or ".."');
  const abs = resolve(dest);
  const rel = relative(resolve(nodeRoot), abs);
  if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
    throw new WebPortError(400, 'the destination may not be inside the node directory');
  }
  if (abs === posix.sep) throw new WebPortError(400, 'the destination may not be /');
  try {
    const names = await readdir(abs);
    if (names.length > 0) throw new WebPortError(409, `${abs} is not empty; restore into a new or empty directory`);
  } catch (err) {
    if (err instanceof WebPortError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') throw new WebPortError(409, `${abs} exists and is not a directory`);
    if (code !== 'ENOENT') throw new WebPortError(400, `cannot use ${abs}: ${code ?? (err as Error).message}`);
  }
  return abs;
}

/** `https://user:secret@host` → `https://***@host` (restic's StripPassword). */
export function stripCredentials(message: string): string {
  return message.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]+@/gi, '$1***@');
}

/** The storage service's clients and alerts for the page. */
export function createStorageView(storage: Pick<StorageService, 'clients' | 'staleClients'>, clock: Clock): StorageView {
  return {
    async clients() {
      return (await storage.clients()).map((c) => ({
        name: c.name,
        appendOnly: c.appendOnly,
        quota: c.quota,
        usedBytes: c.usedBytes,
        objects: c.objects,
        createdAt: c.createdAt,
        lastSeenAt: c.lastSeenAt,
        lastBackupAt: c.lastBackupAt,
      }));
    },
    async alerts() {
      return (await storage.staleClients(clock.now())).map((s) => ({ name: s.name, message: s.message }));
    },
  };
}

/**
 * The read-only share token (`private/readonly_token`): read when present, else created
 * (mode 0600, 32 random bytes). It opens the status pages without any control.
 */
export async function readonlyToken(layout: NodeDirLayout): Promise<string> {
  const file = `${layout.privateDir}/readonly_token`;
  try {
    const t = (await readFile(file, 'utf8')).trim();
    if (t.length >= 16) return t;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(layout.privateDir, { recursive: true, mode: 0o700 });
  const token = randomBytes(32).toString('base64url');
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  return token;
}
