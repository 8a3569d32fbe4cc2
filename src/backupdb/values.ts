import { BackupDbError } from './errors.js';

/** What the JSON columns (stats, detail, settings, checkpoints) hold. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** Column time (ms since the epoch) → Date; NULL stays null. */
export function dateOrNull(ms: number | null | undefined): Date | null {
  return ms === null || ms === undefined ? null : new Date(ms);
}

/** JSON.stringify that names the column in its error (bigints, cycles). */
export function toJson(value: unknown, what: string): string {
  try {
    return JSON.stringify(value);
  } catch (err) {
    throw new BackupDbError('BACKUPDB_INVALID_ARGUMENT', `${what} is not JSON-serializable: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** JSON.parse that turns a damaged column into BACKUPDB_CORRUPT_ENTRY. */
export function fromJson<T>(text: string, what: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new BackupDbError('BACKUPDB_CORRUPT_ENTRY', `${what} holds invalid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
