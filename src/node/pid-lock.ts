import { readFileSync } from 'node:fs';
import { open, readFile, unlink } from 'node:fs/promises';

/** Thrown when another live node holds the directory. */
export class NodeDirLockedError extends Error {
  readonly code = 'NODE_DIR_LOCKED';
  constructor(
    readonly pidFile: string,
    readonly pid: number,
  ) {
    super(`another Nightjar node (pid ${pid}) is running on this directory (lock file ${pidFile}); stop it first`);
  }
}

/**
 * The pid/lock file that keeps two nodes off one directory. Created with O_EXCL, so of two
 * nodes starting at once exactly one wins. A file left by a node that died (its pid is no
 * longer a running nightjar process) is stale and taken over.
 */
export class PidLock {
  private constructor(
    readonly pidFile: string,
    private released = false,
  ) {}

  static async acquire(pidFile: string): Promise<{ lock: PidLock; recoveredStalePid: number | null }> {
    let recoveredStalePid: number | null = null;
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const handle = await open(pidFile, 'wx', 0o644);
        await handle.writeFile(`${process.pid}\n`);
        await handle.sync();
        await handle.close();
        return { lock: new PidLock(pidFile), recoveredStalePid };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = await readHolder(pidFile);
      if (holder !== null && holder !== process.pid && isLiveNode(holder)) throw new NodeDirLockedError(pidFile, holder);
      // Stale: the holder is gone (or the file is garbage). Remove and try again.
      recoveredStalePid = holder ?? -1;
      await unlink(pidFile).catch(() => {});
    }
    throw new Error(`could not take the lock file ${pidFile}`);
  }

  /** Removes the lock file if it is still ours. Idempotent. */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if ((await readHolder(this.pidFile)) === process.pid) await unlink(this.pidFile).catch(() => {});
  }
}

async function readHolder(pidFile: string): Promise<number | null> {
  try {
    const pid = Number.parseInt((await readFile(pidFile, 'utf8')).trim(), 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** True when `pid` runs and (where /proc tells) is a node process, not a recycled pid. */
function isLiveNode(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return /node|nightjar/.test(cmdline);
  } catch {
    return true; // no /proc: trust kill(0)
  }
}
