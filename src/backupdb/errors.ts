/**
 * Stable error codes of the backupdb. Callers branch on `code`, never on the message:
 * - `BACKUPDB_OPEN_FAILED`: the file could not be opened or created (permissions, missing
 *   directory); `cause` holds the SQLite error.
 * - `BACKUPDB_NOT_A_DATABASE`: the file exists but is not an SQLite database (or is
 *   encrypted / badly damaged). Nothing was written to it.
 * - `BACKUPDB_SCHEMA_TOO_NEW`: the file was written by a newer Nightjar whose schema this
 *   code does not know; it is left untouched so the newer version keeps working.
 * - `BACKUPDB_CLOSED`: the database was used after `close()`.
 * - `BACKUPDB_SQLITE`: a statement failed; `sqliteCode` (e.g. `SQLITE_CONSTRAINT`,
 *   `SQLITE_BUSY`, `SQLITE_FULL`) says why and `cause` holds the original error.
 * - `BACKUPDB_INVALID_ARGUMENT`: a caller passed a value the schema cannot store
 *   (a bigint outside ±2^53 as a column value, a content id that is not hex, …).
 * - `BACKUPDB_CORRUPT_ENTRY`: a stored value could not be decoded (file cache blob,
 *   JSON column); the caller should treat the entry as missing.
 * - `BACKUPDB_RUN_ACTIVE`: `startRun` for a job that already has an unfinished
 *   (running or suspended) run.
 * - `BACKUPDB_RUN_NOT_FOUND`: no run with that id.
 * - `BACKUPDB_RUN_NOT_ACTIVE`: the run has already ended (completed, failed, …), so it
 *   cannot be updated, suspended, resumed or finished again.
 */
export type BackupDbErrorCode =
  | 'BACKUPDB_OPEN_FAILED'
  | 'BACKUPDB_NOT_A_DATABASE'
  | 'BACKUPDB_SCHEMA_TOO_NEW'
  | 'BACKUPDB_CLOSED'
  | 'BACKUPDB_SQLITE'
  | 'BACKUPDB_INVALID_ARGUMENT'
  | 'BACKUPDB_CORRUPT_ENTRY'
  | 'BACKUPDB_RUN_ACTIVE'
  | 'BACKUPDB_RUN_NOT_FOUND'
  | 'BACKUPDB_RUN_NOT_ACTIVE';

/** Every error the backupdb throws on purpose; see {@link BackupDbErrorCode}. */
export class BackupDbError extends Error {
  override readonly name = 'BackupDbError';
  readonly code: BackupDbErrorCode;
  /** The SQLite result code name (`SQLITE_BUSY`, …) when SQLite reported the error. */
  readonly sqliteCode: string | undefined;

  constructor(code: BackupDbErrorCode, message: string, options?: { cause?: unknown; sqliteCode?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.sqliteCode = options?.sqliteCode;
  }
}

/** The `SQLITE_…` code of an error from the sqlite3 package, if it has one. */
export function sqliteCodeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}
