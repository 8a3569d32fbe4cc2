import type { Database } from './db.js';
import { BackupDbError } from './errors.js';

/**
 * One numbered schema step. `up` runs inside a transaction together with the
 * `PRAGMA user_version = version` that records it, so a crash leaves the database at the
 * previous version, never half-way. Migrations are append-only: a released one is never
 * edited; a change is a new migration.
 */
export interface Migration {
  readonly version: number;
  readonly description: string;
  readonly up: string | ((db: Database) => Promise<void>);
}

/**
 * `PRAGMA application_id` of a Nightjar backupdb ("NJDB"), so `file(1)`-style tools and
 * our own open can tell it from another program's SQLite file.
 */
export const APPLICATION_ID = 0x4e4a4442;

/**
 * Times are INTEGER milliseconds since the epoch (UTC), always from the injected Clock.
 * Tables are STRICT so a wrong type is an error, not a silent conversion.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'job state, runs, events, file cache, settings',
    up: `
      CREATE TABLE job_state (
        job                     TEXT PRIMARY KEY,
        paused                  INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
        paused_at               INTEGER,
        last_started_at         INTEGER,
        last_ended_at           INTEGER,
        last_result             TEXT,
        last_run_id             INTEGER,
        last_success_started_at INTEGER,
        last_completed_at       INTEGER,
        current_run_id          INTEGER,
        updated_at              INTEGER NOT NULL
      ) STRICT;

      CREATE TABLE runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        job         TEXT NOT NULL,
        target      TEXT NOT NULL,
        kind        TEXT NOT NULL DEFAULT 'backup',
        started_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        ended_at    INTEGER,
        result      TEXT NOT NULL CHECK (result IN
                      ('running', 'suspended', 'completed', 'partial', 'failed', 'cancelled', 'refused')),
        snapshot_id TEXT,
        error       TEXT,
        stats       TEXT NOT NULL DEFAULT '{}',
        checkpoint  ANY
      ) STRICT;
      CREATE INDEX runs_by_job ON runs (job, id);
      CREATE INDEX runs_unfinished ON runs (id) WHERE ended_at IS NULL;

      CREATE TABLE events (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        at      INTEGER NOT NULL,
        job     TEXT,
        run_id  INTEGER,
        level   TEXT NOT NULL CHECK (level IN ('debug', 'info', 'warn', 'error')),
        kind    TEXT NOT NULL,
        message TEXT NOT NULL,
        detail  TEXT
      ) STRICT;
      CREATE INDEX events_by_job ON events (job, id);
      CREATE INDEX events_by_at ON events (at);

      -- One set per (repository id, job): the cache is only valid against the repository
      -- it was built for. Dropping a set drops its directories (ON DELETE CASCADE).
      CREATE TABLE file_cache_sets (
        id         INTEGER PRIMARY KEY,
        repo_id    TEXT NOT NULL,
        job        TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        UNIQUE (repo_id, job)
      ) STRICT;
      -- One row per directory; entries is the binary encoding of file-cache-codec.ts.
      CREATE TABLE file_cache (
        set_id     INTEGER NOT NULL REFERENCES file_cache_sets (id) ON DELETE CASCADE,
        dir        BLOB NOT NULL,
        entries    BLOB NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (set_id, dir)
      ) STRICT;

      CREATE TABLE settings (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at INTEGER NOT NULL
      ) STRICT;
    `,
  },
  {
    version: 2,
    description: 'bandwidth usage accounting',
    up: `
      -- Bytes sent per (job, target, time bucket). Recent rows are per minute
      -- (span_ms = 60000); rollUp() merges old ones into one row per day.
      -- job '' = traffic of no particular job.
      CREATE TABLE usage (
        job       TEXT NOT NULL,
        target    TEXT NOT NULL,
        bucket_at INTEGER NOT NULL,
        span_ms   INTEGER NOT NULL,
        bytes     INTEGER NOT NULL,
        PRIMARY KEY (job, target, bucket_at, span_ms)
      ) STRICT, WITHOUT ROWID;
      CREATE INDEX usage_by_time ON usage (bucket_at);
    `,
  },
];

/** The schema version this code writes; databases above it are refused. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

/** `PRAGMA user_version` of an open database (0 for a new, empty file). */
export async function readSchemaVersion(db: Database): Promise<number> {
  const row = await db.get<{ user_version: number }>('PRAGMA user_version');
  return row?.user_version ?? 0;
}

/**
 * Brings the schema up to `targetVersion` (default: {@link SCHEMA_VERSION}), one
 * migration per transaction, and returns the versions before and after. Idempotent.
 * Throws `BACKUPDB_SCHEMA_TOO_NEW` when the file is newer than this code, and
 * `BACKUPDB_NOT_A_DATABASE` when it is another program's SQLite database (tables
 * present but no version, or a foreign application_id). Call once, right after opening,
 * before anything else uses the connection.
 */
export async function migrate(db: Database, targetVersion = SCHEMA_VERSION): Promise<{ from: number; to: number }> {
  const from = await readSchemaVersion(db);
  const appId = (await db.get<{ application_id: number }>('PRAGMA application_id'))?.application_id ?? 0;
  if (appId !== 0 && appId !== APPLICATION_ID) {
    throw new BackupDbError(
      'BACKUPDB_NOT_A_DATABASE',
      `${db.path} is an SQLite database of another program (application_id 0x${appId.toString(16)}), not a Nightjar backupdb`,
    );
  }
  if (from > SCHEMA_VERSION) {
    throw new BackupDbError(
      'BACKUPDB_SCHEMA_TOO_NEW',
      `${db.path} has schema version ${from}, but this Nightjar knows only up to ${SCHEMA_VERSION}; ` +
        'it was written by a newer Nightjar: upgrade Nightjar (the file was left untouched)',
    );
  }
  if (from === 0) {
    const objects = await db.get<{ n: number }>("SELECT count(*) AS n FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'");
    if ((objects?.n ?? 0) > 0) {
      throw new BackupDbError(
        'BACKUPDB_NOT_A_DATABASE',
        `${db.path} is an SQLite database with tables but no Nightjar schema version; not a Nightjar backupdb`,
      );
    }
  }
  let version = from;
  for (const m of MIGRATIONS) {
    if (m.version <= version || m.version > targetVersion) continue;
    await db.transaction(async () => {
      if (typeof m.up === 'string') await db.exec(m.up);
      else await m.up(db);
      if (version === 0) await db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
      await db.exec(`PRAGMA user_version = ${m.version}`);
    });
    version = m.version;
  }
  return { from, to: version };
}
