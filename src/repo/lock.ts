import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock } from '../node/clock.js';
import type { Store } from '../store/store.js';
import { open, seal } from './crypto.js';
import { RepoLockedError } from './errors.js';
import type { RepoLock } from './types.js';

/** A lock older than this without refresh is stale (30 min). */
export const LOCK_STALE_MS = 30 * 60 * 1000;
/** Holders refresh their lock this often (5 min: six chances before it goes stale). */
export const LOCK_REFRESH_MS = 5 * 60 * 1000;

/** Contents of `locks/<id>` (sealed JSON). */
export interface LockInfo {
  host: string;
  pid: number;
  time: string;
  exclusive: boolean;
}

export interface LockContext {
  store: Store;
  encKey: Buffer;
  clock: Clock;
  host?: string;
  pid?: number;
  /** Whether a pid on this host is alive (default: process.kill(pid, 0)). */
  isAlive?: (pid: number) => boolean;
}

function defaultIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Why a lock is stale, or null when it is live. */
export function staleReason(info: LockInfo, ctx: LockContext): string | null {
  const age = ctx.clock.nowMs() - Date.parse(info.time);
  if (!(age <= LOCK_STALE_MS)) return `not refreshed for ${Math.round(age / 60000)} min`;
  const host = ctx.host ?? hostname();
  if (info.host === host && info.pid !== (ctx.pid ?? process.pid) && !(ctx.isAlive ?? defaultIsAlive)(info.pid)) {
    return `process ${info.pid} on ${host} is gone`;
  }
  return null;
}

async function readLocks(ctx: LockContext): Promise<Map<string, LockInfo | null>> {
  const out = new Map<string, LockInfo | null>();
  for await (const o of ctx.store.list('locks/')) {
    try {
      const info = JSON.parse(open(ctx.encKey, await ctx.store.read(o.name), o.name).toString('utf8')) as LockInfo;
      out.set(o.name, info);
    } catch {
      out.set(o.name, null); // deleted meanwhile or unreadable: not a live lock
    }
  }
  return out;
}

/**
 * Takes a lock (FORMAT.md "Locks"): removes stale locks, refuses when a live lock
 * conflicts (an exclusive lock conflicts with every other lock), writes `locks/<random>`,
 * then re-lists to catch a racing writer (on a race both sides may back off; never both
 * win). The lock is refreshed every 5 min by writing a new object and deleting the old.
 */
export async function acquireLock(ctx: LockContext, exclusive: boolean): Promise<RepoLock> {
  const host = ctx.host ?? hostname();
  const pid = ctx.pid ?? process.pid;
  const conflicts = async (own?: string): Promise<void> => {
    for (const [name, info] of await readLocks(ctx)) {
      if (name === own || !info) continue;
      const stale = staleReason(info, ctx);
      if (stale) {
        await ctx.store.delete(name).catch(() => {});
        continue;
      }
      if (exclusive || info.exclusive) {
        throw new RepoLockedError(
          `repository ${ctx.store.location} is locked${info.exclusive ? ' exclusively' : ''} by ${info.host} pid ${info.pid} since ${info.time} (${name})`,
        );
      }
    }
  };
  await conflicts();
  const write = async (): Promise<string> => {
    const info: LockInfo = { host, pid, time: ctx.clock.now().toISOString(), exclusive };
    const name = `locks/${randomBytes(32).toString('hex')}`;
    await ctx.store.write(name, seal(ctx.encKey, Buffer.from(JSON.stringify(info))));
    return name;
  };
  let current = await write();
  try {
    await conflicts(current);
  } catch (err) {
    await ctx.store.delete(current).catch(() => {});
    throw err;
  }
  const stop = new AbortController();
  const refresher = (async () => {
    while (!stop.signal.aborted) {
      try {
        await ctx.clock.sleep(LOCK_REFRESH_MS, stop.signal);
      } catch {
        return;
      }
      try {
        const next = await write();
        const old = current;
        current = next;
        await ctx.store.delete(old);
      } catch {
        /* try again at the next refresh; the lock goes stale only after 30 min */
      }
    }
  })();
  let released = false;
  return {
    get id() {
      return current.slice('locks/'.length);
    },
    exclusive,
    async release() {
      if (released) return;
      released = true;
      stop.abort();
      await refresher;
      await ctx.store.delete(current);
    },
  };
}
