import type { BigIntStats } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';

/**
 * The mass-deletion guard: an unmounted drive or an emptied source must never turn into a
 * snapshot that looks like "every file was deleted". Checked twice: before the walk
 * (source missing, not a directory, empty, on another device) and after it, before the
 * snapshot is written (share of the previous snapshot's files that are gone).
 */

/** What the guard knows of the previous snapshot of the same job. */
export interface PreviousSnapshotFacts {
  /** Files (regular files) in the previous snapshot. */
  readonly files: number;
  /** Device of the source root at the previous snapshot, when recorded. */
  readonly sourceDev?: bigint | null;
}

/** A refusal: the run writes no snapshot and ends `refused`. */
export interface GuardRefusal {
  readonly code: 'source-missing' | 'source-not-directory' | 'source-empty' | 'source-other-device' | 'too-many-deleted';
  readonly message: string;
}

const OVERRIDE = 'run with --allow-mass-delete if this is intended';

/**
 * Checks the source root before anything is read. Returns the root's lstat on success so
 * the caller need not stat it again. Never throws for file-system errors: a source that
 * cannot be stat'ed is "missing" (with the reason).
 */
export async function checkSourceBeforeRun(
  source: string,
  previous: PreviousSnapshotFacts | null,
  opts: { oneFileSystem: boolean },
): Promise<{ ok: true; stat: BigIntStats } | { ok: false; refusal: GuardRefusal }> {
  let st: BigIntStats;
  try {
    // stat, not lstat: a source given as a symlink to a directory is that directory.
    st = await lstat(source, { bigint: true });
    if (st.isSymbolicLink()) st = await stat(source, { bigint: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(err)})`;
    return {
      ok: false,
      refusal: {
        code: 'source-missing',
        message: `source ${source} ${why}; is the drive mounted? No snapshot was written`,
      },
    };
  }
  if (!st.isDirectory()) {
    return {
      ok: false,
      refusal: { code: 'source-not-directory', message: `source ${source} is not a directory; no snapshot was written` },
    };
  }
  if (previous && previous.files > 0) {
    let names: string[] = [];
    try {
      names = await readdir(source);
    } catch {
      // unreadable root: the walk reports it; emptiness cannot be told here
      names = ['?'];
    }
    if (names.length === 0) {
      return {
        ok: false,
        refusal: {
          code: 'source-empty',
          message: `source ${source} is empty but the previous snapshot had ${previous.files} files; is the drive mounted? ${OVERRIDE}`,
        },
      };
    }
  }
  if (opts.oneFileSystem && previous?.sourceDev != null && previous.sourceDev !== st.dev) {
    return {
      ok: false,
      refusal: {
        code: 'source-other-device',
        message: `source ${source} is on another device than at the previous snapshot (device ${st.dev}, was ${previous.sourceDev}); is the right drive mounted? ${OVERRIDE}`,
      },
    };
  }
  return { ok: true, stat: st };
}

/**
 * Checks, before the snapshot is written, the share of the previous snapshot's files
 * that are gone. `maxDeleteRatio` is 0–1; a ratio above it refuses. Pure.
 */
export function checkDeletionRatio(
  source: string,
  previousFiles: number,
  removedFiles: number,
  maxDeleteRatio: number,
): GuardRefusal | null {
  if (previousFiles <= 0 || removedFiles <= 0) return null;
  const ratio = removedFiles / previousFiles;
  if (ratio <= maxDeleteRatio) return null;
  const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;
  return {
    code: 'too-many-deleted',
    message:
      `source ${source} lost ${removedFiles} of the previous snapshot's ${previousFiles} files (${pct(ratio)}, ` +
      `more than max_delete_ratio ${pct(maxDeleteRatio)}); no snapshot was written; ${OVERRIDE}`,
  };
}
