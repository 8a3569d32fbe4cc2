/**
 * Statistics of one backup run, Box Backup style. The same object (JSON-safe: numbers
 * and strings only) goes into the snapshot, the backupdb's run history, the progress
 * callback and the final report.
 */
export interface RunStats {
  /** Regular files on the source that were backed up or reused (after excludes). */
  filesTotal: number;
  /** Their bytes. */
  bytesTotal: number;
  dirs: number;
  symlinks: number;
  /** FIFOs, sockets, devices: recorded, never read. */
  specials: number;
  /** Files whose stored content was reused without reading (file cache hit). */
  filesUnchanged: number;
  bytesUnchanged: number;
  /** Files not in the previous snapshot. */
  filesNew: number;
  bytesNewFiles: number;
  /** Files in the previous snapshot whose metadata changed; read again. */
  filesChanged: number;
  bytesChangedFiles: number;
  /** Why changed files were read (one file can count under several reasons). */
  changedReasons: { size: number; mtime: number; ctime: number; inode: number };
  /** Files of the previous snapshot that are gone (or now excluded). */
  filesRemoved: number;
  /** Files the previous snapshot had (0 without a previous snapshot). */
  filesPrevious: number;
  /** Entries left out by the job's filters (not warnings). */
  skipped: { excluded: number; tooLarge: number; tooYoung: number; otherFilesystem: number; repository: number };
  /** Bytes of file content read from the source (in a dry run: bytes that would be read). */
  bytesRead: number;
  /** Raw bytes of chunks not already in the repository (after dedup). */
  bytesNew: number;
  /** Bytes added to the repository (after compression and encryption). */
  bytesWritten: number;
  /**
   * Files whose content is durable in the repository and recorded in the file cache by a
   * checkpoint: a run restarted after a crash skips them without reading.
   */
  filesCheckpointed: number;
  /** Number of warnings (the list below is capped at MAX_WARNINGS_KEPT). */
  warningCount: number;
  warnings: RunWarning[];
  /** ISO time the run started (from the injected clock). */
  startedAt: string;
  durationMs: number;
  /** Device of the source root (decimal string; bigints are not JSON), for the guard. */
  sourceDev?: string;
  dryRun?: boolean;
}

/** A bad file: the run goes on, and ends `partial`. */
export interface RunWarning {
  /** Path relative to the source root; undecodable bytes as `\xNN`. */
  path: string;
  message: string;
}

/** Warnings beyond this are counted, not kept (a million unreadable files stay bounded). */
export const MAX_WARNINGS_KEPT = 1000;

/** A fresh, all-zero statistics object. */
export function emptyStats(startedAt: Date): RunStats {
  return {
    filesTotal: 0,
    bytesTotal: 0,
    dirs: 0,
    symlinks: 0,
    specials: 0,
    filesUnchanged: 0,
    bytesUnchanged: 0,
    filesNew: 0,
    bytesNewFiles: 0,
    filesChanged: 0,
    bytesChangedFiles: 0,
    changedReasons: { size: 0, mtime: 0, ctime: 0, inode: 0 },
    filesRemoved: 0,
    filesPrevious: 0,
    skipped: { excluded: 0, tooLarge: 0, tooYoung: 0, otherFilesystem: 0, repository: 0 },
    bytesRead: 0,
    bytesNew: 0,
    bytesWritten: 0,
    filesCheckpointed: 0,
    warningCount: 0,
    warnings: [],
    startedAt: startedAt.toISOString(),
    durationMs: 0,
  };
}

/** Adds a warning, keeping at most MAX_WARNINGS_KEPT of them. */
export function addWarning(stats: RunStats, w: RunWarning): void {
  stats.warningCount++;
  if (stats.warnings.length < MAX_WARNINGS_KEPT) stats.warnings.push(w);
}

/** A deep copy safe to hand to callbacks that keep it. */
export function cloneStats(stats: RunStats): RunStats {
  return structuredClone(stats);
}

/** Reads statistics back from a snapshot's or run's JSON (tolerates older/foreign shapes). */
export function statsFromJson(value: unknown): Partial<RunStats> | null {
  if (value === null || typeof value !== 'object') return null;
  return value as Partial<RunStats>;
}
