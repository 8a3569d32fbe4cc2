import { createHmac, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import type { Clock } from '../node/clock.js';

/** Cookie holding the session (derived from the API token, never the token itself). */
export const SESSION_COOKIE = 'nightjar_session';
/** Header a page sends with every state-changing request. */
export const CSRF_HEADER = 'x-csrf-token';

/** A wrong token costs the caller this long: online guessing becomes pointless. */
const FAILED_AUTH_DELAY_MS = 1000;
/** Failures per address within FAILURE_WINDOW_MS before answering 429 outright. */
const MAX_FAILURES = 10;
const FAILURE_WINDOW_MS = 60_000;

/**
 * Derived secrets for one API token. The cookie and CSRF values are HMACs of the token,
 * so a leaked cookie or page does not reveal the token, and both change with it.
 */
export class WebSecrets {
  readonly session: string;
  readonly csrf: string;

  constructor(private readonly token: string) {
    this.session = derive(token, 'session-v1');
    this.csrf = derive(token, 'csrf-v1');
  }

  /** Constant-time check of a presented API token. */
  isToken(presented: string | undefined): boolean {
    return presented !== undefined && safeEqual(presented, this.token);
  }

  isSession(presented: string | undefined): boolean {
    return presented !== undefined && safeEqual(presented, this.session);
  }

  isCsrf(presented: string | undefined): boolean {
    return presented !== undefined && safeEqual(presented, this.csrf);
  }
}

function derive(token: string, purpose: string): string {
  return createHmac('sha256', token).update(`nightjar/${purpose}`).digest('base64url');
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  // Compare equal-length digests so the length of the secret doesn't leak through timing.
  const hx = createHmac('sha256', 'cmp').update(x).digest();
  const hy = createHmac('sha256', 'cmp').update(y).digest();
  return timingSafeEqual(hx, hy) && x.length === y.length;
}

/** Host names the page answers to besides loopback: blocks DNS-rebinding attacks. */
export function hostCheck(extraHostnames: readonly string[]) {
  const allowed = new Set(['localhost', '127.0.0.1', '::1', ...extraHostnames.map((h) => h.toLowerCase())]);
  return (req: Request, res: Response, next: NextFunction) => {
    const host = hostnameOf(req.headers.host);
    if (host === null || !allowed.has(host)) {
      res.status(403).type('text/plain').send('forbidden: unknown Host header\n');
      return;
    }
    next();
  };
}

/** `example:8080` → `example`, `[::1]:80` → `::1`; null when absent or malformed. */
export function hostnameOf(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(header.trim());
  if (!m) return null;
  return (m[1] ?? m[2]!).toLowerCase();
}

export function cookieValue(req: Request, name: string): string | undefined {
  const header = req.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

export function bearerToken(req: Request): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return m?.[1];
}

/**
 * Counts failed attempts per address and delays every failure, so the token cannot be
 * guessed online. Old entries are forgotten after the window.
 */
export class FailedAuthLimiter {
  private failures = new Map<string, number[]>();

  constructor(
    private readonly clock: Clock,
    private readonly delayMs = FAILED_AUTH_DELAY_MS,
  ) {}

  /** True when this address has failed too often recently. */
  isBlocked(address: string): boolean {
    return this.recent(address).length >= MAX_FAILURES;
  }

  /** Records a failure and resolves after the penalty delay. */
  async fail(address: string): Promise<void> {
    const list = this.recent(address);
    list.push(this.clock.nowMs());
    this.failures.set(address, list);
    if (this.failures.size > 10_000) this.failures.clear(); // bounded memory under a flood
    await this.clock.sleep(this.delayMs);
  }

  private recent(address: string): number[] {
    const since = this.clock.nowMs() - FAILURE_WINDOW_MS;
    return (this.failures.get(address) ?? []).filter((t) => t > since);
  }
}
