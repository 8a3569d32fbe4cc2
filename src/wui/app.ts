import express, { type NextFunction, type Request, type Response } from 'express';
import { readFileSync } from 'node:fs';
import type { Clock } from '../node/clock.js';
import {
  bearerToken,
  cookieValue,
  CSRF_HEADER,
  FailedAuthLimiter,
  hostCheck,
  SESSION_COOKIE,
  WebSecrets,
} from './auth.js';
import { renderOverview } from './views.js';
import type { NodeStatus } from './status.js';
import type { NodeControls } from './controls.js';

export type { NodeControls } from './controls.js';

export interface WebAppOptions {
  readonly clock: Clock;
  /** The API token (private/api_auth_token). */
  readonly token: string;
  /** Host names accepted besides loopback ([node] web.hostnames). */
  readonly hostnames: readonly string[];
  /** The node's current status; called per request. */
  readonly status: () => Promise<NodeStatus>;
  /** Owner controls; without them the page is read-only. */
  readonly controls?: NodeControls;
}

type JobAction = 'pause' | 'resume' | 'run' | 'cancel';
const JOB_ACTIONS: readonly JobAction[] = ['pause', 'resume', 'run', 'cancel'];

// Static files stay in the source tree (tsc copies no assets); this module runs from dist/src/wui.
const STYLESHEET = readFileSync(new URL('../../../src/wui/static/app.css', import.meta.url), 'utf8');

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
  'Referrer-Policy': 'no-referrer',
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Cache-Control': 'no-store',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/**
 * The status page and its JSON API as an express app; the caller listens. Private by
 * construction: every route but /login needs the token (bearer) or the session cookie the
 * login link sets; the Host header must be a loopback name or a configured one;
 * state-changing requests from a cookie session need the CSRF header; no GET changes state.
 */
export function createWebApp(opts: WebAppOptions): express.Express {
  const secrets = new WebSecrets(opts.token);
  const limiter = new FailedAuthLimiter(opts.clock);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use((_req, res, next) => {
    res.set(SECURITY_HEADERS);
    next();
  });
  app.use(hostCheck(opts.hostnames));

  const reject = async (req: Request, res: Response) => {
    const address = req.socket.remoteAddress ?? 'unknown';
    if (limiter.isBlocked(address)) {
      res.status(429).type('text/plain').send('too many failed attempts; try again later\n');
      return;
    }
    await limiter.fail(address);
    res.status(401).type('text/plain').send('unauthorized: open the login link that `nightjar start` printed\n');
  };

  // The login link carries the token once; the cookie replaces it and the redirect drops
  // it from the address bar and history.
  app.get('/login', async (req, res) => {
    const token = typeof req.query.token === 'string' ? req.query.token : undefined;
    if (!secrets.isToken(token)) return reject(req, res);
    res.cookie(SESSION_COOKIE, secrets.session, { httpOnly: true, sameSite: 'strict', path: '/' });
    res.redirect(303, '/');
  });

  // Small bodies only: forms and JSON control calls.
  app.use(express.urlencoded({ extended: false, limit: '4kb' }));
  app.use(express.json({ limit: '4kb' }));

  app.use(async (req: Request, res: Response, next: NextFunction) => {
    if (secrets.isToken(bearerToken(req))) return next(); // scripts and the CLI; no cookie, so no CSRF risk
    if (!secrets.isSession(cookieValue(req, SESSION_COOKIE))) return reject(req, res);
    const formToken = typeof req.body?._csrf === 'string' ? (req.body._csrf as string) : undefined;
    if (req.method !== 'GET' && req.method !== 'HEAD' && !secrets.isCsrf(req.get(CSRF_HEADER) ?? formToken)) {
      res.status(403).type('text/plain').send('forbidden: missing or wrong CSRF token\n');
      return;
    }
    next();
  });

  app.get('/static/app.css', (_req, res) => {
    res.type('text/css').send(STYLESHEET);
  });

  app.get('/', async (_req, res) => {
    res.type('html').send(renderOverview(await opts.status(), { csrf: secrets.csrf, controls: opts.controls !== undefined }));
  });

  app.get('/api/v1/status', async (_req, res) => {
    res.json(await opts.status());
  });

  const controls = opts.controls;
  if (controls) {
    /** Runs one control; `job` null = all jobs. Answers JSON for the API, a redirect for forms. */
    const act = async (req: Request, res: Response, action: JobAction, job: string | null, asForm: boolean) => {
      if (job !== null && !controls.hasJob(job)) {
        res.status(404).json({ error: `no job named ${JSON.stringify(job)}` });
        return;
      }
      let result: string;
      switch (action) {
        case 'pause':
          await controls.pause(job);
          result = 'paused';
          break;
        case 'resume':
          await controls.resume(job);
          result = 'resumed';
          break;
        case 'run':
          result = await controls.runNow(job!, { ignoreWindow: req.body?.ignoreWindow === true || req.body?.ignoreWindow === 'on' });
          break;
        case 'cancel':
          result = (await controls.cancel(job!)) ? 'cancelled' : 'nothing to cancel';
          break;
      }
      if (asForm) res.redirect(303, '/');
      else res.json({ job, action, result });
    };
    for (const action of JOB_ACTIONS) {
      app.post(`/api/v1/jobs/:job/${action}`, (req, res) => act(req, res, action, String(req.params.job), false));
      app.post(`/jobs/:job/${action}`, (req, res) => act(req, res, action, String(req.params.job), true));
    }
    for (const action of ['pause', 'resume'] as const) {
      app.post(`/api/v1/${action}`, (req, res) => act(req, res, action, null, false));
      app.post(`/${action}`, (req, res) => act(req, res, action, null, true));
    }
  }

  app.use((_req: Request, res: Response) => {
    res.status(404).type('text/plain').send('not found\n');
  });
  // Express needs the 4-argument signature to recognise an error handler.
  app.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
    const status = (err as { status?: number }).status ?? 500;
    res.status(status >= 400 && status < 600 ? status : 500).type('text/plain').send(status < 500 ? 'bad request\n' : 'internal error\n');
  });
  return app;
}
