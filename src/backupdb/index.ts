import type { Clock } from '../node/clock.js';
import { Database } from './db.js';
import { BackupDbError } from './errors.js';
import { EventsApi } from './events.js';
import { FileCacheApi } from './file-cache.js';
import { JobsApi } from './jobs.js';
import { migrate } from './migrations.js';
import { RunsApi } from './runs.js';
import { SettingsApi } from './settings.js';
import { UsageApi } from './usage.js';

export { Database, MAX_BATCH_ROWS, MAX_VARIABLES, type Row, type SqlParams, type SqlValue, type WriteResult } from './db.js';
export { BackupDbError, type BackupDbErrorCode } from './errors.js';
export { EVENT_LEVELS, EventsApi, type EventLevel, type EventRecord, type ListEventsOptions, type NewEvent } from './events.js';
export {
  FileCacheApi,
  keyName,
  nameKey,
  type CachedDir,
  type CachedDirInfo,
  type CachedDirRecord,
  type CachedDirRow,
  type CachedFile,
} from './file-cache.js';
export { decodeDir, decodeDirRecord, encodeDir } from './file-cache-codec.js';
export { JobsApi, emptyJobState, type JobState } from './jobs.js';
export { APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, migrate, readSchemaVersion, type Migration } from './migrations.js';
export {
  FINAL_RUN_RESULTS,
  RunsApi,
  SUCCESSFUL_RUN_RESULTS,
  type Checkpoint,
  type FinalRunResult,
  type FinishRunOptions,
  type RunKind,
  type RunRecord,
  type RunResult,
  type RunStats,
  type StartRunOptions,
  type UnfinishedRun,
} from './runs.js';
export { SettingsApi } from './settings.js';
export { USAGE_BUCKET_MS, USAGE_DAY_MS, UsageApi, utcDayStart, type UsageFilter, type UsageRow, type UsageSample } from './usage.js';
export type { JsonValue } from './values.js';

/** How long a statement waits for another process's lock before failing with SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

export interface OpenBackupDbOptions {
  /** Source of every timestamp the backupdb writes. */
  clock: Clock;
}

/**
 * The node's backupdb: one SQLite file (`DIR/backupdb.sqlite`), one connection, grouped
 * by table family. Everything is safe to call concurrently from anywhere in the node;
 * writes are serialized on the one connection (see {@link Database}).
 */
export class BackupDb {
  readonly jobs: JobsApi;
  readonly runs: RunsApi;
  readonly events: EventsApi;
  readonly fileCache: FileCacheApi;
  readonly settings: SettingsApi;
  readonly usage: UsageApi;

  constructor(
    /** The underlying connection, for transactions spanning families and for tests. */
    readonly db: Database,
    readonly clock: Clock,
    /** Schema version before this open (0: the file was new) and now. */
    readonly migrated: { from: number; to: number },
  ) {
    this.jobs = new JobsApi(db, clock);
    this.runs = new RunsApi(db, clock);
    this.events = new EventsApi(db, clock);
    this.fileCache = new FileCacheApi(db, clock);
    this.settings = new SettingsApi(db, clock);
    this.usage = new UsageApi(db, clock);
  }

  get path(): string {
    return this.db.path;
  }

  /**
   * Runs `fn` in one transaction (see `Database.transaction`): every backupdb call made
   * inside it, through any family, commits or rolls back together.
   */
  transaction<T>(fn: () => Promise<T>): Promise<T> {
    return this.db.transaction(fn);
  }

  /** Waits for queued work, then closes the file. Idempotent; later calls throw BACKUPDB_CLOSED. */
  close(): Promise<void> {
    return this.db.close();
  }
}

/**
 * Opens (creating when missing) the backupdb at `path`, sets WAL, `busy_timeout`
 * ({@link BUSY_TIMEOUT_MS}), `foreign_keys=ON`, `synchronous=NORMAL` (durable at each WAL
 * checkpoint, never corrupt), and migrates the schema to the current version.
 *
 * Fails with {@link BackupDbError}: `BACKUPDB_OPEN_FAILED` (cannot open or create),
 * `BACKUPDB_NOT_A_DATABASE` (not SQLite, or another program's database),
 * `BACKUPDB_SCHEMA_TOO_NEW` (written by a newer Nightjar; left untouched). On failure
 * the file is closed. Only one node may open a given file (the node directory's lock
 * guarantees it); other processes may read it.
 */
export async function openBackupDb(path: string, opts: OpenBackupDbOptions): Promise<BackupDb> {
  const db = await Database.open(path);
  try {
    await db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`);
    // The first read of the header: a file that is not SQLite fails here.
    await db.get('PRAGMA user_version');
    const mode = await db.get<{ journal_mode: string }>('PRAGMA journal_mode = WAL');
    if (mode?.journal_mode !== 'wal') {
      throw new BackupDbError('BACKUPDB_OPEN_FAILED', `${path}: cannot switch to WAL mode (got ${mode?.journal_mode})`);
    }
    await db.exec('PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; PRAGMA temp_store = MEMORY');
    const migrated = await migrate(db);
    return new BackupDb(db, opts.clock, migrated);
  } catch (err) {
    await db.close().catch(() => undefined);
    if (err instanceof BackupDbError && err.code === 'BACKUPDB_NOT_A_DATABASE' && !err.message.includes(path)) {
      throw new BackupDbError('BACKUPDB_NOT_A_DATABASE', `${path} is not a Nightjar backupdb (not an SQLite database)`, {
        cause: err,
        sqliteCode: err.sqliteCode ?? '',
      });
    }
    throw err;
  }
}
