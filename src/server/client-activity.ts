/**
 * What a storage node remembers about each client's activity: when it was last seen and
 * its last completed backup (which the client reports). Kept per client in
 * `[storage] path/.state/<client>.json` (a dot name, so never a client directory), next to
 * the data it describes. "Last seen" changes with every request, so it is written at most
 * every FLUSH_INTERVAL_MS and at close; a backup report is written at once.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

/** The last completed backup a client reported. */
export interface BackupReport {
  /** When the storage node received the report (its own clock, ISO). */
  readonly reportedAt: string;
  /** When the client says the backup completed (ISO), if it said. */
  readonly completedAt: string | null;
  readonly job: string | null;
  readonly snapshot: string | null;
}

export interface ClientActivityState {
  lastSeenAt: string | null;
  lastBackup: BackupReport | null;
}

/** Losing up to this much "last seen" precision on a crash is fine; a write per request is not. */
const FLUSH_INTERVAL_MS = 5 * 60_000;

/** Activity of all clients of one storage directory. Methods may be called concurrently. */
export class ClientActivity {
  private readonly states = new Map<string, Promise<ClientActivityState>>();
  private readonly dirty = new Set<string>();
  private lastFlushMs: number;

  constructor(
    private readonly dir: string,
    nowMs: number,
  ) {
    this.lastFlushMs = nowMs;
  }

  /** The client's state (read from disk on first use). */
  get(name: string): Promise<ClientActivityState> {
    let p = this.states.get(name);
    if (!p) {
      p = this.read(name);
      this.states.set(name, p);
    }
    return p;
  }

  /** Records a request from `name` at `nowMs`; persists lazily. */
  async seen(name: string, nowMs: number): Promise<void> {
    const state = await this.get(name);
    state.lastSeenAt = new Date(nowMs).toISOString();
    this.dirty.add(name);
    if (nowMs - this.lastFlushMs >= FLUSH_INTERVAL_MS) await this.flush(nowMs);
  }

  /** Records a completed backup and persists it before resolving. */
  async backupCompleted(name: string, report: BackupReport): Promise<void> {
    const state = await this.get(name);
    state.lastBackup = report;
    await this.write(name, state);
    this.dirty.delete(name);
  }

  /** Writes every changed state. */
  async flush(nowMs: number): Promise<void> {
    this.lastFlushMs = nowMs;
    const names = [...this.dirty];
    this.dirty.clear();
    for (const name of names) await this.write(name, await this.get(name));
  }

  private async read(name: string): Promise<ClientActivityState> {
    try {
      const j = JSON.parse(await fsp.readFile(this.file(name), 'utf8')) as Partial<ClientActivityState>;
      return {
        lastSeenAt: typeof j.lastSeenAt === 'string' ? j.lastSeenAt : null,
        lastBackup: j.lastBackup && typeof j.lastBackup.reportedAt === 'string' ? j.lastBackup : null,
      };
    } catch {
      // Missing or damaged: start afresh (activity is informational, never data).
      return { lastSeenAt: null, lastBackup: null };
    }
  }

  private async write(name: string, state: ClientActivityState): Promise<void> {
    await fsp.mkdir(this.dir, { recursive: true, mode: 0o700 });
    const temp = join(this.dir, `.${name}.tmp-${randomBytes(6).toString('hex')}`);
    try {
      await fsp.writeFile(temp, JSON.stringify(state) + '\n', { mode: 0o600 });
      await fsp.rename(temp, this.file(name));
    } catch (err) {
      await fsp.unlink(temp).catch(() => {});
      throw err;
    }
  }

  private file(name: string): string {
    return join(this.dir, `${name}.json`);
  }
}
