import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { openBackupDb, type BackupDb } from '../../src/backupdb/index.js';
import { runBackup, type BackupJobSpec, type BackupRepository, type BackupRunOptions, type RunResult } from '../../src/jobs/backup-run.js';
import { systemClock } from '../../src/node/clock.js';
import { Repository } from '../../src/repo/repository.js';
import { LocalStore } from '../../src/store/local-store.js';
import { removeDir, tempDir } from './fixture-tree.js';

/** A repository on a LocalStore with a cheap KDF (tests only), and a backupdb, in `dir`. */
export interface BackupEnv {
  repo: Repository;
  store: LocalStore;
  db: BackupDb;
  close(): Promise<void>;
}

export const TEST_KDF = { N: 2 ** 10, r: 8, p: 1 };

export async function openBackupEnv(dir: string, opts: { repoDir?: string; workers?: number; chunkerSeed?: Buffer } = {}): Promise<BackupEnv> {
  const store = new LocalStore(opts.repoDir ?? join(dir, 'repo'));
  const { repo } = await Repository.openOrInit(store, 'test passphrase', {
    clock: systemClock,
    kdf: TEST_KDF,
    workers: opts.workers ?? 2,
    ...(opts.chunkerSeed ? { chunkerSeed: opts.chunkerSeed } : {}),
  });
  const db = await openBackupDb(join(dir, 'backupdb.sqlite'), { clock: systemClock });
  return {
    repo,
    store,
    db,
    close: async () => {
      await repo.close();
      await store.close();
      await db.close();
    },
  };
}

/**
 * The usual suite around a BackupEnv: before the suite's tests a temp dir with `src/`
 * filled by `fill` and an env over it (handed to `use`); after them, all closed and removed.
 */
export function backupSuite(
  fill: (src: string) => Promise<void>,
  use: (suite: { dir: string; src: string; env: BackupEnv }) => void,
  opts: Parameters<typeof openBackupEnv>[1] = {},
): void {
  let dir = '';
  let env: BackupEnv | null = null;
  before(async () => {
    dir = await tempDir();
    const src = join(dir, 'src');
    await mkdir(src);
    await fill(src);
    env = await openBackupEnv(dir, opts);
    use({ dir, src, env });
  });
  after(async () => {
    await env?.close();
    await removeDir(dir);
  });
}

/** A job spec with the defaults of node.cfg. */
export function jobSpec(source: string, over: Partial<BackupJobSpec> = {}): BackupJobSpec {
  return {
    name: 'b1',
    source,
    exclude: [],
    maxFileSize: null,
    minFileAgeMs: null,
    oneFileSystem: false,
    maxDeleteRatio: 0.5,
    target: { alias: 'local', name: 'b1' },
    ...over,
  };
}

/** Counts saveFile calls and can inject behaviour before/after each. */
export function spyRepo(
  repo: BackupRepository,
  hooks: { before?: (path: Buffer) => Promise<void> | void; after?: (path: Buffer) => Promise<void> | void } = {},
): BackupRepository & { saveFileCalls: Buffer[] } {
  const calls: Buffer[] = [];
  return {
    get id() {
      return repo.id;
    },
    saveFileCalls: calls,
    saveFile: async (path, o) => {
      calls.push(path);
      await hooks.before?.(path);
      const r = await repo.saveFile(path, o);
      await hooks.after?.(path);
      return r;
    },
    // The walk lists directories as it does with a real repository.
    ...(repo.listDir ? { listDir: (p: Buffer) => repo.listDir!(p) } : {}),
    saveTree: (t) => repo.saveTree(t),
    loadTree: (id) => repo.loadTree(id),
    hasBlob: (id) => repo.hasBlob(id),
    flush: () => repo.flush(),
    saveSnapshot: (s) => repo.saveSnapshot(s),
    listSnapshots: () => repo.listSnapshots(),
  };
}

/** runBackup with the env's repo and cache and system clock. */
export function backup(env: BackupEnv, job: BackupJobSpec, over: Partial<BackupRunOptions> = {}): Promise<RunResult> {
  return runBackup({ repo: env.repo, fileCache: env.db.fileCache, job, clock: systemClock, host: 'test', ...over });
}
