import type { Clock } from '../node/clock.js';
import type { Database, SqlValue } from './db.js';
import {
  decodeDir,
  decodeDirRecord,
  encodeDir,
  nameKey,
  type CachedDir,
  type CachedDirInfo,
  type CachedDirRecord,
  type CachedFile,
} from './file-cache-codec.js';

export {
  nameKey,
  keyName,
  type CachedDir,
  type CachedDirInfo,
  type CachedDirRecord,
  type CachedFile,
} from './file-cache-codec.js';

export interface CachedDirRow {
  /** The directory's path bytes, as the engine names it (relative to the job's source). */
  dir: Buffer;
  /** Its complete entries: saving replaces whatever was cached for the directory. */
  entries: ReadonlyMap<string, CachedFile>;
  /** What the engine keeps about the directory as a whole; absent = none (a version-1 row). */
  info?: CachedDirInfo | null;
}

/**
 * Soft cap on the encoded bytes bound in one multi-row statement, so a batch of huge
 * directories does not build one giant statement (the row cap of db.runBatch still holds).
 */
const MAX_BATCH_BYTES = 8 << 20;
/** Directories per lookup in `loadDirs` (one `IN (…)` statement each). */
const LOAD_CHUNK = 256;

/**
 * THE FILE CACHE (`db.fileCache`): per (repository id, job, directory), what each file
 * looked like when it was stored, so an unchanged file is skipped without being read.
 * One row per directory (one query per directory on the hot path, never per file).
 *
 * The cache is valid only for the repository it was built against: every call names the
 * repository id, and another id sees nothing, so a wiped or swapped repository can never
 * cause a skip of data it lacks. (Within one repository the engine must still not reuse
 * content ids that prune has removed: after a prune, `dropRepo` or check the index.)
 *
 * Methods are safe to call concurrently. `saveDirs` is atomic per call.
 */
export class FileCacheApi {
  /** `${repoId}\0${job}` → set id; cleared by the drop methods. */
  private readonly setIds = new Map<string, number>();

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /**
   * The cached entries of `dir`, or null when the directory is not cached (never saved,
   * or dropped). An empty Map means a directory saved with no files. A row that cannot
   * be decoded throws `BACKUPDB_CORRUPT_ENTRY`; treat the directory as uncached.
   */
  async loadDir(repoId: string, job: string, dir: Buffer): Promise<CachedDir | null> {
    const setId = await this.findSet(repoId, job);
    if (setId === undefined) return null;
    const row = await this.db.get<{ entries: Buffer }>('SELECT entries FROM file_cache WHERE set_id = ? AND dir = ?', [
      setId,
      dir,
    ]);
    return row ? decodeDir(row.entries) : null;
  }

  /**
   * Batched `loadDir` for prefetching (measured ~4x faster than one call per directory:
   * 5k directories in ~0.15 s against ~0.6 s): the cached directories among `dirs`, keyed by
   * `nameKey(dir)`; directories not cached are absent from the result.
   */
  async loadDirs(repoId: string, job: string, dirs: readonly Buffer[]): Promise<Map<string, CachedDir>> {
    const out = new Map<string, CachedDir>();
    const setId = await this.findSet(repoId, job);
    if (setId === undefined || dirs.length === 0) return out;
    for (let i = 0; i < dirs.length; i += LOAD_CHUNK) {
      const chunk = dirs.slice(i, i + LOAD_CHUNK);
      const rows = await this.db.all<{ dir: Buffer; entries: Buffer }>(
        `SELECT dir, entries FROM file_cache WHERE set_id = ? AND dir IN (${chunk.map(() => '?').join(',')})`,
        [setId, ...chunk],
      );
      for (const r of rows) out.set(nameKey(r.dir), decodeDir(r.entries));
    }
    return out;
  }

  /** Whether any directory row is cached for the repository and job. */
  async hasRows(repoId: string, job: string): Promise<boolean> {
    const setId = await this.findSet(repoId, job);
    if (setId === undefined) return false;
    return (await this.db.get('SELECT 1 AS one FROM file_cache WHERE set_id = ? LIMIT 1', [setId])) !== undefined;
  }

  /**
   * `loadDirs` with each row's directory info, for the backup walk. A row that cannot be
   * decoded is left out (the directory is then uncached: its files are read again).
   * `dirs` is looked up in statements of LOAD_CHUNK directories; pass a bounded batch.
   */
  async loadDirRecords(repoId: string, job: string, dirs: readonly Buffer[]): Promise<Map<string, CachedDirRecord>> {
    const out = new Map<string, CachedDirRecord>();
    const setId = await this.findSet(repoId, job);
    if (setId === undefined || dirs.length === 0) return out;
    for (let i = 0; i < dirs.length; i += LOAD_CHUNK) {
      const chunk = dirs.length <= LOAD_CHUNK ? dirs : dirs.slice(i, i + LOAD_CHUNK);
      const rows = await this.db.all<{ dir: Buffer; entries: Buffer }>(
        chunk.length === 1
          ? 'SELECT dir, entries FROM file_cache WHERE set_id = ? AND dir = ?'
          : `SELECT dir, entries FROM file_cache WHERE set_id = ? AND dir IN (${chunk.map(() => '?').join(',')})`,
        [setId, ...chunk],
      );
      for (const r of rows) {
        try {
          out.set(nameKey(r.dir), decodeDirRecord(r.entries));
        } catch {
          // damaged: treated as uncached
        }
      }
    }
    return out;
  }

  /**
   * Stores each directory's complete entries, replacing what was cached for it, in one
   * transaction with multi-row upserts. Call it with batches of directories (hundreds),
   * e.g. as the engine finishes them, not once per directory. A value that cannot be
   * encoded (non-hex content id, negative size, key not from `nameKey`) throws
   * `BACKUPDB_INVALID_ARGUMENT` and nothing of the batch is saved.
   */
  async saveDirs(repoId: string, job: string, rows: readonly CachedDirRow[]): Promise<void> {
    if (rows.length === 0) return;
    const encoded = rows.map((r) => [r.dir, encodeDir(r.entries, r.info)] as const);
    const now = this.clock.nowMs();
    await this.db.transaction(async () => {
      const setId = await this.ensureSet(repoId, job, now);
      let batch: SqlValue[][] = [];
      let bytes = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        await this.db.runBatch(
          'INSERT INTO file_cache (set_id, dir, entries, updated_at) VALUES',
          batch,
          'ON CONFLICT (set_id, dir) DO UPDATE SET entries = excluded.entries, updated_at = excluded.updated_at',
        );
        batch = [];
        bytes = 0;
      };
      for (const [dir, blob] of encoded) {
        batch.push([setId, dir, blob, now]);
        bytes += blob.length + dir.length;
        if (bytes >= MAX_BATCH_BYTES) await flush();
      }
      await flush();
    });
  }

  /** Forgets the given directories (e.g. removed from the source). Returns how many were cached. */
  async deleteDirs(repoId: string, job: string, dirs: readonly Buffer[]): Promise<number> {
    const setId = await this.findSet(repoId, job);
    if (setId === undefined || dirs.length === 0) return 0;
    return this.db.transaction(async () => {
      let changes = 0;
      for (let i = 0; i < dirs.length; i += LOAD_CHUNK) {
        const chunk = dirs.slice(i, i + LOAD_CHUNK);
        const r = await this.db.run(
          `DELETE FROM file_cache WHERE set_id = ? AND dir IN (${chunk.map(() => '?').join(',')})`,
          [setId, ...chunk],
        );
        changes += r.changes;
      }
      return changes;
    });
  }

  /** Every cached directory path of (repoId, job), in byte order. */
  async listDirs(repoId: string, job: string): Promise<Buffer[]> {
    const setId = await this.findSet(repoId, job);
    if (setId === undefined) return [];
    const rows = await this.db.all<{ dir: Buffer }>('SELECT dir FROM file_cache WHERE set_id = ? ORDER BY dir', [setId]);
    return rows.map((r) => r.dir);
  }

  /**
   * Forgets everything cached against a repository (all jobs), e.g. when its id changed
   * or it was pruned. Returns the number of directories dropped. Idempotent.
   */
  async dropRepo(repoId: string): Promise<number> {
    return this.drop('repo_id = ?', repoId);
  }

  /** Forgets everything cached for a job (all repositories). Returns directories dropped. */
  async dropJob(job: string): Promise<number> {
    return this.drop('job = ?', job);
  }

  /** Size of the cache: (repo, job) sets, directories and encoded bytes. */
  async stats(): Promise<{ sets: number; dirs: number; bytes: number }> {
    const row = await this.db.get<{ sets: number; dirs: number; bytes: number | null }>(
      'SELECT (SELECT count(*) FROM file_cache_sets) AS sets, count(*) AS dirs, sum(length(entries)) AS bytes FROM file_cache',
    );
    return { sets: row?.sets ?? 0, dirs: row?.dirs ?? 0, bytes: row?.bytes ?? 0 };
  }

  private async drop(where: string, value: string): Promise<number> {
    this.setIds.clear();
    return this.db.transaction(async () => {
      const row = await this.db.get<{ n: number }>(
        `SELECT count(*) AS n FROM file_cache WHERE set_id IN (SELECT id FROM file_cache_sets WHERE ${where})`,
        [value],
      );
      await this.db.run(`DELETE FROM file_cache_sets WHERE ${where}`, [value]); // cascades
      this.setIds.clear();
      return row?.n ?? 0;
    });
  }

  private async findSet(repoId: string, job: string): Promise<number | undefined> {
    const key = `${repoId}\0${job}`;
    const cached = this.setIds.get(key);
    if (cached !== undefined) return cached;
    const row = await this.db.get<{ id: number }>('SELECT id FROM file_cache_sets WHERE repo_id = ? AND job = ?', [
      repoId,
      job,
    ]);
    if (row) this.setIds.set(key, row.id);
    return row?.id;
  }

  /** Inside a transaction: the set id, created when missing (never from the memo, which a drop may have staled). */
  private async ensureSet(repoId: string, job: string, now: number): Promise<number> {
    await this.db.run(
      'INSERT INTO file_cache_sets (repo_id, job, created_at) VALUES (?, ?, ?) ON CONFLICT (repo_id, job) DO NOTHING',
      [repoId, job, now],
    );
    const row = await this.db.get<{ id: number }>('SELECT id FROM file_cache_sets WHERE repo_id = ? AND job = ?', [
      repoId,
      job,
    ]);
    this.setIds.set(`${repoId}\0${job}`, row!.id);
    return row!.id;
  }
}
