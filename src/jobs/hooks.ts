import { spawn } from 'node:child_process';
import type { JobConfig } from '../node/config/types.js';
import type { RunStats } from './run-stats.js';

/** Which hook: `pre_command`, `post_command`, `on_failure`, `on_overdue`. */
export type HookKind = 'pre_command' | 'post_command' | 'on_failure' | 'on_overdue';

/** Captured output kept per hook run (stdout and stderr interleaved); the rest is counted, not kept. */
export const HOOK_OUTPUT_LIMIT = 16 * 1024;

/** After SIGTERM to a timed-out hook's process group, SIGKILL follows this much later. */
export const HOOK_KILL_GRACE_MS = 2000;

/** What a hook is told about (all optional but the job). */
export interface HookInfo {
  readonly job: JobConfig;
  /** The run's outcome: completed, partial, failed, cancelled, refused (post_command, on_failure). */
  readonly result?: string;
  readonly snapshotId?: string;
  readonly error?: string;
  readonly stats?: Partial<RunStats>;
  /** on_overdue: ISO time of the last completed run, or absent when it never completed. */
  readonly lastSuccessAt?: string;
  /** on_overdue: ISO time the job became overdue. */
  readonly overdueSince?: string;
}

/** The outcome of one hook run. */
export interface HookResult {
  readonly kind: HookKind;
  readonly command: string;
  /** Exit code, or null when it was killed by a signal (or never started). */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  /** Could not be started at all (the error's message is in `output`). */
  readonly spawnError: boolean;
  /** stdout and stderr as they arrived, at most HOOK_OUTPUT_LIMIT bytes (decoded as UTF-8). */
  readonly output: string;
  /** Bytes of output beyond the limit that were dropped. */
  readonly droppedBytes: number;
  readonly ok: boolean;
}

/**
 * The NIGHTJAR_* environment of a hook: NIGHTJAR_HOOK, NIGHTJAR_JOB, NIGHTJAR_SOURCE,
 * NIGHTJAR_TARGET, and when known NIGHTJAR_RESULT, NIGHTJAR_SNAPSHOT, NIGHTJAR_ERROR,
 * NIGHTJAR_FILES_TOTAL/_NEW/_CHANGED/_UNCHANGED/_REMOVED, NIGHTJAR_BYTES_READ/_NEW/_WRITTEN,
 * NIGHTJAR_WARNINGS, NIGHTJAR_DURATION_S, NIGHTJAR_LAST_SUCCESS, NIGHTJAR_OVERDUE_SINCE.
 * Pure.
 */
export function hookEnvironment(kind: HookKind, info: HookInfo): Record<string, string> {
  const env: Record<string, string> = {
    NIGHTJAR_HOOK: kind,
    NIGHTJAR_JOB: info.job.name,
    NIGHTJAR_SOURCE: info.job.source,
    NIGHTJAR_TARGET: `${info.job.target.alias}:${info.job.target.name}`,
  };
  const put = (name: string, v: string | number | undefined) => {
    if (v !== undefined) env[name] = String(v);
  };
  put('NIGHTJAR_RESULT', info.result);
  put('NIGHTJAR_SNAPSHOT', info.snapshotId);
  put('NIGHTJAR_ERROR', info.error);
  put('NIGHTJAR_LAST_SUCCESS', info.lastSuccessAt);
  put('NIGHTJAR_OVERDUE_SINCE', info.overdueSince);
  const s = info.stats;
  if (s) {
    put('NIGHTJAR_FILES_TOTAL', s.filesTotal);
    put('NIGHTJAR_FILES_NEW', s.filesNew);
    put('NIGHTJAR_FILES_CHANGED', s.filesChanged);
    put('NIGHTJAR_FILES_UNCHANGED', s.filesUnchanged);
    put('NIGHTJAR_FILES_REMOVED', s.filesRemoved);
    put('NIGHTJAR_BYTES_READ', s.bytesRead);
    put('NIGHTJAR_BYTES_NEW', s.bytesNew);
    put('NIGHTJAR_BYTES_WRITTEN', s.bytesWritten);
    put('NIGHTJAR_WARNINGS', s.warningCount);
    if (s.durationMs !== undefined) put('NIGHTJAR_DURATION_S', (s.durationMs / 1000).toFixed(1));
  }
  return env;
}

/** The configured command of a hook kind for a job, or null. */
export function hookCommand(job: JobConfig, kind: HookKind): string | null {
  switch (kind) {
    case 'pre_command':
      return job.preCommand;
    case 'post_command':
      return job.postCommand;
    case 'on_failure':
      return job.onFailure;
    case 'on_overdue':
      return job.onOverdue;
  }
}

/**
 * Runs `command` with `/bin/sh -c` in its own process group, the parent's environment
 * plus `env`, stdin from /dev/null. Resolves when the shell exits (never rejects): after
 * `timeoutMs` the whole group gets SIGTERM, then SIGKILL HOOK_KILL_GRACE_MS later; an
 * aborted `signal` does the same at once. Output is captured up to HOOK_OUTPUT_LIMIT.
 * Any number may run at once.
 */
export function runHook(
  kind: HookKind,
  command: string,
  env: Record<string, string>,
  opts: { timeoutMs: number; signal?: AbortSignal; cwd?: string; baseEnv?: NodeJS.ProcessEnv },
): Promise<HookResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let kept = 0;
    let dropped = 0;
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const child = spawn('/bin/sh', ['-c', command], {
      detached: true, // its own process group, so a timeout stops the whole pipeline
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...(opts.baseEnv ?? process.env), ...env },
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    const collect = (d: Buffer) => {
      const room = HOOK_OUTPUT_LIMIT - kept;
      if (room > 0) {
        chunks.push(d.subarray(0, room));
        kept += Math.min(room, d.length);
      }
      dropped += Math.max(0, d.length - Math.max(room, 0));
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const killGroup = (sig: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        /* already gone */
      }
    };
    const stop = () => {
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), HOOK_KILL_GRACE_MS);
      killTimer.unref();
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutMs);
    const onAbort = () => stop();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let settled = false;
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      // The shell is gone; make sure nothing it started outlives a timeout.
      if (timedOut) killGroup('SIGKILL');
      if (killTimer) clearTimeout(killTimer);
      const output = spawnError ? spawnError.message : Buffer.concat(chunks).toString('utf8');
      resolve({
        kind, command, exitCode, signal, timedOut, spawnError: spawnError !== undefined, output, droppedBytes: dropped,
        ok: !timedOut && !spawnError && exitCode === 0,
      });
    };
    child.on('error', (err) => finish(null, null, err));
    // 'close' waits for the pipes, so the output is complete; a grandchild that keeps the
    // pipes open after the shell exits is stopped by the timeout.
    child.on('close', (code, sig) => finish(code, sig));
  });
}

/** One line for the event log: `pre_command exited 3 after…: <output tail>`. */
export function describeHookResult(r: HookResult, timeoutMs: number): string {
  const how = r.spawnError
    ? 'could not be started'
    : r.timedOut
      ? `was stopped after ${Math.round(timeoutMs / 1000)} s (hook_timeout)`
      : r.exitCode !== null
        ? `exited ${r.exitCode}`
        : `was killed by ${r.signal ?? 'a signal'}`;
  const out = r.output.trim();
  const tail = out.length > 2000 ? `…${out.slice(-2000)}` : out;
  return `${r.kind} ${how}${tail ? `: ${tail}` : ''}${r.droppedBytes > 0 ? ` (${r.droppedBytes} more bytes of output dropped)` : ''}`;
}

/** Thrown by a runner when a failing pre_command skips the run; the message says why. */
export class PreCommandFailedError extends Error {
  readonly code = 'NJ_PRE_COMMAND_FAILED';
  constructor(readonly hook: HookResult, timeoutMs: number) {
    super(`run skipped: ${describeHookResult(hook, timeoutMs)}`);
    this.name = 'PreCommandFailedError';
  }
}

/** Where a hook run is recorded (the backupdb event log, the node log). */
export type HookRecorder = (e: {
  level: 'info' | 'warn' | 'error';
  kind: string;
  message: string;
  detail: { hook: HookKind; command: string; exitCode: number | null; timedOut: boolean; output: string };
}) => Promise<void> | void;

/**
 * Runs the job's `kind` hook if it has one (null otherwise) and records it: event kind
 * `hook.done` (info) or `hook.failed` (warn), the captured output in the detail. A
 * recorder error is swallowed (a hook never fails a run through its bookkeeping).
 */
export async function runJobHook(
  kind: HookKind,
  info: HookInfo,
  opts: { record: HookRecorder; signal?: AbortSignal; baseEnv?: NodeJS.ProcessEnv },
): Promise<HookResult | null> {
  const command = hookCommand(info.job, kind);
  if (command === null) return null;
  const timeoutMs = info.job.hookTimeoutMs;
  const r = await runHook(kind, command, hookEnvironment(kind, info), {
    timeoutMs,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.baseEnv ? { baseEnv: opts.baseEnv } : {}),
  });
  try {
    await opts.record({
      level: r.ok ? 'info' : 'warn',
      kind: r.ok ? 'hook.done' : 'hook.failed',
      message: `${info.job.name}: ${r.ok ? `${kind} finished${r.output.trim() ? `: ${r.output.trim().slice(-500)}` : ''}` : describeHookResult(r, timeoutMs)}`,
      detail: { hook: kind, command, exitCode: r.exitCode, timedOut: r.timedOut, output: r.output },
    });
  } catch {
    /* recorded nowhere; the hook's outcome still counts */
  }
  return r;
}
