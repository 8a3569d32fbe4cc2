/**
 * The only place that reads the wall clock. Everything else receives a Clock, so tests
 * can live through weeks of schedule in milliseconds (see test/helpers/fake-clock.ts).
 * `scripts/lint.mjs` rejects `Date.now()` and bare `new Date()` anywhere else.
 */
export interface Clock {
  /** The current time. */
  now(): Date;
  /** Milliseconds since the epoch; same instant as now(). */
  nowMs(): number;
  /**
   * Resolves after `ms` milliseconds of this clock's time, or rejects with an AbortError
   * when `signal` aborts first. Callers that wait for long must sleep in slices
   * (at most 30 s) and re-read now() afterwards: a suspended laptop stops timers.
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** Real time. */
export const systemClock: Clock = {
  now: () => new Date(),
  nowMs: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(abortError(signal));
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, Math.max(0, ms));
      const onAbort = () => {
        clearTimeout(timer);
        reject(abortError(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

export function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error('The operation was aborted');
  err.name = 'AbortError';
  return err;
}

/**
 * TEST HOOK ONLY — never for production use. `NIGHTJAR_TEST_CLOCK` lets an end-to-end test
 * run a real node process (`nightjar start`) through window openings and closes without
 * waiting for real hours:
 *
 *     NIGHTJAR_TEST_CLOCK=<ISO start>[@<speed>][,<ISO from>><ISO to>[@<speed>]]...
 *
 * The clock starts at `<ISO start>` when the process starts and runs `speed` (default 1)
 * times faster than real time; each `<from>><to>` jumps from test time `from` straight to
 * `to` (a night skipped, as if the machine had slept) and goes on at its own speed (default:
 * the previous one). Sleeps last `ms / speed` real milliseconds and end early at a jump, so
 * a caller re-reads the time right after it. Example: `2026-03-02T21:59:55Z@6,
 * 2026-03-02T22:01:30Z>2026-03-03T21:59:58Z@1`.
 *
 * Honoured only with NODE_ENV=test (the e2e tests set it); otherwise the variable is an
 * error, so a stray environment can never shift a real node's clock. Returns null when the
 * variable is unset or empty.
 */
export function testClockFromEnv(env: NodeJS.ProcessEnv): Clock | null {
  const spec = env.NIGHTJAR_TEST_CLOCK?.trim();
  if (!spec) return null;
  if (env.NODE_ENV !== 'test') {
    throw new Error('NIGHTJAR_TEST_CLOCK is a test hook: it is honoured only with NODE_ENV=test; unset it');
  }
  return shiftedClock(parseTestClock(spec), () => Date.now());
}

/** One stretch of test time: from `atMs` (test time) at `speed`; `realMs` is the real time it starts at. */
interface Segment {
  readonly atMs: number;
  readonly speed: number;
  realMs: number;
  /** Test time this segment ends at (a jump's `from`), or Infinity. */
  endMs: number;
}

function parseTestClock(spec: string): Omit<Segment, 'realMs'>[] {
  const bad = (why: string) => new Error(`NIGHTJAR_TEST_CLOCK="${spec}": ${why}`);
  const time = (s: string) => {
    const ms = Date.parse(s);
    if (!Number.isFinite(ms)) throw bad(`"${s}" is not an ISO time`);
    return ms;
  };
  const withSpeed = (s: string, prev: number) => {
    const [t, sp] = s.split('@');
    const speed = sp === undefined ? prev : Number(sp);
    if (!(speed > 0) || !Number.isFinite(speed)) throw bad(`speed "${sp}" must be a positive number`);
    return { t: t!.trim(), speed };
  };
  const parts = spec.split(',');
  const first = withSpeed(parts[0]!, 1);
  const segs: Omit<Segment, 'realMs'>[] = [{ atMs: time(first.t), speed: first.speed, endMs: Infinity }];
  for (const part of parts.slice(1)) {
    const [from, rest] = part.split('>');
    if (rest === undefined) throw bad(`"${part}" is not <from>><to>[@speed]`);
    const prev = segs[segs.length - 1]!;
    const to = withSpeed(rest, prev.speed);
    const fromMs = time(from!.trim());
    const toMs = time(to.t);
    if (fromMs <= prev.atMs || toMs < fromMs) throw bad(`jumps must go forward, in order ("${part}")`);
    prev.endMs = fromMs;
    segs.push({ atMs: toMs, speed: to.speed, endMs: Infinity });
  }
  return segs;
}

function shiftedClock(parsed: Omit<Segment, 'realMs'>[], realNow: () => number): Clock {
  const segs: Segment[] = [];
  let real = realNow();
  for (const s of parsed) {
    segs.push({ ...s, realMs: real });
    if (Number.isFinite(s.endMs)) real += (s.endMs - s.atMs) / s.speed;
  }
  const segmentAt = (r: number) => {
    let seg = segs[0]!;
    for (const s of segs) if (s.realMs <= r) seg = s;
    return seg;
  };
  const nowMs = () => {
    const r = realNow();
    const seg = segmentAt(r);
    return Math.floor(seg.atMs + (r - seg.realMs) * seg.speed);
  };
  return {
    now: () => new Date(nowMs()),
    nowMs,
    sleep: (ms, signal) => {
      const r = realNow();
      const seg = segmentAt(r);
      const testNow = seg.atMs + (r - seg.realMs) * seg.speed;
      // Within this segment at its speed; a sleep past its end wakes at the jump.
      const until = Math.min(testNow + Math.max(0, ms), seg.endMs);
      return systemClock.sleep((until - testNow) / seg.speed, signal);
    },
  };
}
