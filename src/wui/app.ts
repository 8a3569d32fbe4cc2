import express, { type NextFunction, type Request, type Response } from 'express';
import { readFileSync } from 'node:fs';
import type { Clock } from '../node/clock.js';
import { parseRate, UnitError } from '../node/config/units.js';
import {
  bearerToken,
  cookieValue,
  CSRF_HEADER,
  FailedAuthLimiter,
  hostCheck,
  SESSION_COOKIE,
  WebSecrets,
} from './auth.js';
import {
  WebPortError,
  type BandwidthControls,
  type BandwidthScope,
  type NodeControls,
  type NodeData,
  type SnapshotBrowser,
  type StorageView,
} from './controls.js';
import { LiveHub } from './live.js';
import { metricsRouter } from './metrics.js';
import type { NodeStatus } from './status.js';
import { renderOverview, type PageContext, type Role } from './views.js';
import { renderBrowse, renderError, renderEvents, renderJobPage, renderSnapshots, renderStorage, type ChartSeries } from './views-pages.js';

export type { NodeControls } from './controls.js';

export interface WebAppOptions {
  readonly clock: Clock;
  /** The API token (private/api_auth_token). */
  readonly token: string;
  /** The read-only share token (private/readonly_token): status without controls. */
  readonly readonlyToken?: string;
  /** Host names accepted besides loopback ([node] web.hostnames). */
  readonly hostnames: readonly string[];
  /** The node's current status; called per request and once per second while a stream listens. */
  readonly status: () => Promise<NodeStatus>;
  /** Owner controls; without them the page is read-only. */
  readonly controls?: NodeControls;
  /** Live bandwidth limits and usage (issue 5); without them no bandwidth form or chart. */
  readonly bandwidth?: BandwidthControls;
  /** Run history, events, job settings. */
  readonly data?: NodeData;
  /** Snapshot list, browse, download, restore. */
  readonly snapshots?: SnapshotBrowser;
  /** The storage service's clients (only when the node serves peers). */
  readonly storage?: StorageView;
  /** How often the event stream sends the status (default 1000 ms). */
  readonly streamIntervalMs?: number;
}

type JobAction = 'pause' | 'resume' | 'run' | 'cancel';
const JOB_ACTIONS: readonly JobAction[] = ['pause', 'resume', 'run', 'cancel'];

/** Open event streams at most; more answer 503 (each one costs a socket, not a status build). */
const MAX_STREAMS = 32;
/** Run history rows on the job page and in the API by default. */
const DEFAULT_RUNS = 50;
const MAX_LIST = 500;

// Static files stay in the source tree (tsc copies no assets); this module runs from dist/src/wui.
const STYLESHEET = readFileSync(new URL('../../../src/wui/static/app.css', import.meta.url), 'utf8');
const SCRIPT = readFileSync(new URL('../../../src/wui/static/app.js', import.meta.url), 'utf8');

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

/** Routes a read-only link may not even look at: backed-up names and contents. */
const OWNER_ONLY_GET = /^\/(?:snapshots|api\/v1\/snapshots|api\/v1\/restores)(?:\/|$)/;

/**
 * The status pages and their JSON API as an express app; the caller listens. Private by
 * construction: every route but /login needs the token (bearer) or the session cookie the
 * login link sets; the Host header must be a loopback name or a configured one;
 * state-changing requests from a cookie session need the CSRF token (header or form
 * field); no GET changes state. A read-only session sees status pages only: every
 * non-GET is 403, and so are snapshot routes. No response carries a token, key or
 * passphrase (the cookie and CSRF values are HMACs of the token).
 */
export function createWebApp(opts: WebAppOptions): express.Express {
  const owner = new WebSecrets(opts.token);
  const readonly = opts.readonlyToken ? new WebSecrets(opts.readonlyToken) : null;
  const limiter = new FailedAuthLimiter(opts.clock);
  const hub = new LiveHub({ clock: opts.clock, status: opts.status, bandwidth: opts.bandwidth, intervalMs: opts.streamIntervalMs ?? 1000 });
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
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
    const secrets = owner.isToken(token) ? owner : readonly?.isToken(token) ? readonly : null;
    if (!secrets) return reject(req, res);
    res.cookie(SESSION_COOKIE, secrets.session, { httpOnly: true, sameSite: 'strict', path: '/' });
    res.redirect(303, '/');
  });

  // Small bodies only: forms and JSON control calls.
  app.use(express.urlencoded({ extended: false, limit: '8kb' }));
  app.use(express.json({ limit: '8kb' }));

  app.use(async (req: Request, res: Response, next: NextFunction) => {
    const bearer = bearerToken(req);
    let role: Role | null = null;
    let viaCookie = false;
    if (owner.isToken(bearer)) role = 'owner';
    else if (readonly?.isToken(bearer)) role = 'readonly';
    else {
      const cookie = cookieValue(req, SESSION_COOKIE);
      if (owner.isSession(cookie)) role = 'owner';
      else if (readonly?.isSession(cookie)) role = 'readonly';
      viaCookie = true;
    }
    if (role === null) return reject(req, res);
    const changes = req.method !== 'GET' && req.method !== 'HEAD';
    if (role === 'readonly' && (changes || OWNER_ONLY_GET.test(req.path))) {
      res.status(403).type('text/plain').send('forbidden: this is a read-only link\n');
      return;
    }
    // Scripts and the CLI use the bearer token and send no cookie, so they need no CSRF token.
    const formToken = typeof req.body?._csrf === 'string' ? (req.body._csrf as string) : undefined;
    if (viaCookie && changes && !owner.isCsrf(req.get(CSRF_HEADER) ?? formToken)) {
      res.status(403).type('text/plain').send('forbidden: missing or wrong CSRF token\n');
      return;
    }
    res.locals.role = role;
    next();
  });
  // Prometheus text (issue 9), behind the token like every other page.
  app.use(metricsRouter({ status: opts.status, ...(opts.bandwidth ? { bandwidth: opts.bandwidth } : {}), ...(opts.data ? { data: opts.data } : {}) }));

  app.get('/static/app.css', (_req, res) => {
    res.type('text/css').send(STYLESHEET);
  });
  app.get('/static/app.js', (_req, res) => {
    res.type('text/javascript').send(SCRIPT);
  });

  const ctxOf = (res: Response, nickname: string): PageContext => {
    const role = res.locals.role as Role;
    return {
      role,
      csrf: role === 'owner' ? owner.csrf : '',
      nickname,
      hasStorage: opts.storage !== undefined,
      hasSnapshots: opts.snapshots !== undefined,
    };
  };
  const isApi = (req: Request) => req.path.startsWith('/api/');
  const fail = async (req: Request, res: Response, status: number, message: string) => {
    if (isApi(req)) res.status(status).json({ error: message });
    else res.status(status).type('html').send(renderError(ctxOf(res, (await opts.status()).nickname), status, message));
  };
  const knownJob = (status: NodeStatus, job: string) => status.jobs.find((j) => j.name === job);

  // --- Pages -------------------------------------------------------------------------

  app.get('/', async (_req, res) => {
    const u = await hub.current();
    res.type('html').send(renderOverview(ctxOf(res, u.status.nickname), u.status, u.view, { bandwidth: opts.bandwidth !== undefined, limits: u.limits }));
  });

  app.get('/jobs/:job', async (req, res) => {
    const name = String(req.params.job);
    const u = await hub.current();
    const job = knownJob(u.status, name);
    if (!job) return fail(req, res, 404, `no job named ${JSON.stringify(name)}`);
    const alias = job.target.split(':')[0]!;
    const charts: ChartSeries[] = [];
    let limits: { job?: (typeof u.limits)[number]; target?: (typeof u.limits)[number] } | null = null;
    if (opts.bandwidth) {
      const jobLimit = u.limits.find((l) => l.scope.kind === 'job' && l.scope.name === name);
      const targetLimit = u.limits.find((l) => l.scope.kind === 'target' && l.scope.name === alias);
      limits = { ...(jobLimit ? { job: jobLimit } : {}), ...(targetLimit ? { target: targetLimit } : {}) };
      const limit = jobLimit?.effectiveBytesPerSecond ?? null;
      const now = opts.clock.nowMs();
      const runStart = job.progress?.startedAt ? Date.parse(job.progress.startedAt) : now - 3600_000;
      const runSpan = Math.max(60_000, now - runStart);
      // Usage is kept in minute buckets at the finest.
      const runBucket = Math.max(60_000, Math.ceil(runSpan / 60 / 60_000) * 60_000);
      try {
        charts.push({
          title: job.progress ? 'This run' : 'Last hour',
          bucketMs: runBucket,
          limit,
          points: await opts.bandwidth.usage({ since: new Date(now - runSpan), job: name, bucketMs: runBucket }),
        });
        charts.push({ title: 'Last 3 days', bucketMs: 3600_000, limit, points: await opts.bandwidth.usage({ since: new Date(now - 3 * 86_400_000), job: name, bucketMs: 3600_000 }) });
      } catch {
        // No chart is better than no page.
      }
    }
    res.type('html').send(
      renderJobPage(ctxOf(res, u.status.nickname), {
        job,
        view: u.view.jobs[name]!,
        runs: opts.data ? await opts.data.runs(name, DEFAULT_RUNS) : [],
        config: opts.data?.jobConfig(name) ?? null,
        charts,
        limits,
      }),
    );
  });

  app.get('/events', async (req, res) => {
    const status = await opts.status();
    const job = typeof req.query.job === 'string' && knownJob(status, req.query.job) ? req.query.job : undefined;
    const before = intParam(req.query.before);
    const limit = 100;
    const events = opts.data ? await opts.data.events({ ...(job ? { job } : {}), limit, ...(before !== undefined ? { beforeId: before } : {}) }) : [];
    res.type('html').send(renderEvents(ctxOf(res, status.nickname), events, { jobs: status.jobs.map((j) => j.name), job, limit }));
  });

  app.get('/storage', async (req, res) => {
    if (!opts.storage) return fail(req, res, 404, 'this node does not serve storage to peers ([storage] enabled = false)');
    const [status, clients, alerts] = await Promise.all([opts.status(), opts.storage.clients(), opts.storage.alerts()]);
    res.type('html').send(renderStorage(ctxOf(res, status.nickname), clients, alerts));
  });

  const snapshots = opts.snapshots;
  if (snapshots) {
    app.get('/snapshots', async (_req, res) => {
      const [status, targets] = await Promise.all([opts.status(), snapshots.targets()]);
      res.type('html').send(renderSnapshots(ctxOf(res, status.nickname), targets, snapshots.restores()));
    });
    app.get('/snapshots/:target/:id', async (req, res) => {
      const path = pathParam(req.query.path);
      const target = String(req.params.target);
      const listing = await snapshots.list(target, String(req.params.id), path);
      const status = await opts.status();
      res.type('html').send(renderBrowse(ctxOf(res, status.nickname), { target, snapshot: listing.snapshot, path, entries: listing.entries, restores: snapshots.restores() }));
    });
    const download = async (req: Request, res: Response) => {
      const path = pathParam(req.query.path);
      let started = false;
      try {
        await snapshots.download(String(req.params.target), String(req.params.id), path, {
          start: ({ name }) => {
            started = true;
            res.status(200).set({ 'Content-Type': 'application/octet-stream', 'Content-Disposition': contentDisposition(name) });
          },
          write: (chunk) => writeChunk(res, chunk),
        });
        res.end();
      } catch (err) {
        if (!started) throw err;
        res.destroy(); // the client sees a cut transfer, never a truncated file that looks whole
      }
    };
    app.get('/snapshots/:target/:id/file', download);
    app.get('/api/v1/snapshots/:target/:id/file', download);

    const restore = async (req: Request, res: Response, asForm: boolean) => {
      const target = String(req.params.target);
      const id = String(req.params.id);
      const path = pathParam(req.body?.path);
      const dest = typeof req.body?.dest === 'string' ? req.body.dest.trim() : '';
      if (!dest) throw new WebPortError(400, 'dest: the directory on the node to restore into is required');
      const task = await snapshots.startRestore({ target, snapshot: id, path, dest });
      if (asForm) res.redirect(303, `/snapshots/${encodeURIComponent(target)}/${id}${path.length ? `?path=${path.toString('base64url')}` : ''}`);
      else res.status(202).json(task);
    };
    app.post('/snapshots/:target/:id/restore', (req, res) => restore(req, res, true));
    app.post('/api/v1/snapshots/:target/:id/restore', (req, res) => restore(req, res, false));

    app.get('/api/v1/snapshots', async (_req, res) => {
      res.json({ targets: await snapshots.targets() });
    });
    app.get('/api/v1/snapshots/:target/:id/tree', async (req, res) => {
      const listing = await snapshots.list(String(req.params.target), String(req.params.id), pathParam(req.query.path));
      res.json({
        snapshot: listing.snapshot,
        entries: listing.entries.map((e) => ({
          name: e.name.toString('utf8'),
          nameBase64: e.name.toString('base64url'),
          type: e.type,
          size: e.size,
          mode: e.mode,
          mtime: e.mtime,
          ...(e.linkTarget ? { linkTarget: e.linkTarget.toString('utf8') } : {}),
        })),
      });
    });
    app.get('/api/v1/restores', (_req, res) => {
      res.json({ restores: snapshots.restores() });
    });
  }

  // --- JSON API ----------------------------------------------------------------------

  app.get('/api/v1/status', async (_req, res) => {
    res.json(await opts.status());
  });

  // Server-sent events: one `status` event per interval with the status and the view the
  // page shows. The connection ends when the node stops (listenWeb closes every socket).
  app.get('/api/v1/events/stream', async (_req, res) => {
    if (hub.size >= MAX_STREAMS) {
      res.status(503).type('text/plain').send('too many open event streams\n');
      return;
    }
    res.status(200).set({ 'Content-Type': 'text/event-stream; charset=utf-8', 'X-Accel-Buffering': 'no' });
    res.flushHeaders();
    let seq = 0;
    const send = (u: unknown) => void res.write(`id: ${++seq}\nevent: status\ndata: ${JSON.stringify(u)}\n\n`);
    res.write('retry: 3000\n\n');
    const unsubscribe = hub.subscribe(send);
    res.on('close', unsubscribe);
    try {
      send(await hub.current());
    } catch {
      // The next tick sends one.
    }
  });

  app.get('/api/v1/jobs/:job', async (req, res) => {
    const name = String(req.params.job);
    const status = await opts.status();
    const job = knownJob(status, name);
    if (!job) return fail(req, res, 404, `no job named ${JSON.stringify(name)}`);
    res.json({ status: job, config: opts.data?.jobConfig(name) ?? null, runs: opts.data ? await opts.data.runs(name, DEFAULT_RUNS) : [] });
  });

  app.get('/api/v1/jobs/:job/runs', async (req, res) => {
    const name = String(req.params.job);
    if (!knownJob(await opts.status(), name)) return fail(req, res, 404, `no job named ${JSON.stringify(name)}`);
    const limit = Math.min(MAX_LIST, intParam(req.query.limit) ?? DEFAULT_RUNS);
    res.json({ runs: opts.data ? await opts.data.runs(name, limit) : [] });
  });

  app.get('/api/v1/events', async (req, res) => {
    const job = typeof req.query.job === 'string' && req.query.job !== '' ? req.query.job : undefined;
    const before = intParam(req.query.before);
    const limit = Math.min(MAX_LIST, intParam(req.query.limit) ?? 100);
    res.json({ events: opts.data ? await opts.data.events({ ...(job ? { job } : {}), limit, ...(before !== undefined ? { beforeId: before } : {}) }) : [] });
  });

  app.get('/api/v1/storage', async (req, res) => {
    if (!opts.storage) return fail(req, res, 404, 'this node does not serve storage to peers');
    const [clients, alerts] = await Promise.all([opts.storage.clients(), opts.storage.alerts()]);
    res.json({ clients, alerts });
  });

  const bandwidth = opts.bandwidth;
  if (bandwidth) {
    app.get('/api/v1/bandwidth', async (_req, res) => {
      res.json(await bandwidth.status());
    });
    app.get('/api/v1/bandwidth/usage', async (req, res) => {
      const hours = Math.min(24 * 31, intParam(req.query.hours) ?? 24);
      const bucketSeconds = Math.max(1, intParam(req.query.bucketSeconds) ?? 3600);
      if ((hours * 3600) / bucketSeconds > 10_000) throw new WebPortError(400, 'too many buckets: raise bucketSeconds');
      const job = typeof req.query.job === 'string' && req.query.job ? req.query.job : undefined;
      const target = typeof req.query.target === 'string' && req.query.target ? req.query.target : undefined;
      const points = await bandwidth.usage({
        since: new Date(opts.clock.nowMs() - hours * 3600_000),
        bucketMs: bucketSeconds * 1000,
        ...(job ? { job } : {}),
        ...(target ? { target } : {}),
      });
      res.json({ bucketSeconds, points });
    });
    const setBandwidth = async (req: Request, res: Response, asForm: boolean) => {
      const scope = parseScope(req.body?.scope, req.body?.name);
      if (scope.kind === 'job' && opts.controls && !opts.controls.hasJob(scope.name)) throw new WebPortError(404, `no job named ${JSON.stringify(scope.name)}`);
      const limit = parseLimit(req.body?.limit);
      try {
        await bandwidth.set(scope, limit);
      } catch (err) {
        if (err instanceof WebPortError) throw err;
        throw new WebPortError(400, (err as Error).message);
      }
      if (asForm) {
        const back = typeof req.body?.back === 'string' && /^\/(?![/\\])/.test(req.body.back) ? req.body.back : '/';
        res.redirect(303, back);
      } else res.json({ scope, limit, status: await bandwidth.status() });
    };
    app.post('/api/v1/bandwidth', (req, res) => setBandwidth(req, res, false));
    app.post('/bandwidth', (req, res) => setBandwidth(req, res, true));
  }

  const controls = opts.controls;
  if (controls) {
    /** Runs one control; `job` null = all jobs. Answers JSON for the API, a redirect for forms. */
    const act = async (req: Request, res: Response, action: JobAction, job: string | null, asForm: boolean) => {
      if (job !== null && !controls.hasJob(job)) return fail(req, res, 404, `no job named ${JSON.stringify(job)}`);
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
      if (asForm) res.redirect(303, safeBack(req));
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

  app.use((req: Request, res: Response) => {
    if (isApi(req)) res.status(404).json({ error: 'not found' });
    else res.status(404).type('text/plain').send('not found\n');
  });
  // Express needs the 4-argument signature to recognise an error handler.
  app.use((err: Error, req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof WebPortError) {
      void fail(req, res, err.status, err.message).catch(() => res.status(err.status).type('text/plain').send(`${err.message}\n`));
      return;
    }
    const status = (err as { status?: number }).status ?? 500;
    res.status(status >= 400 && status < 600 ? status : 500).type('text/plain').send(status < 500 ? 'bad request\n' : 'internal error\n');
  });
  return app;
}

/** The Referer is never sent (no-referrer); forms say where to go back with `back`. */
function safeBack(req: Request): string {
  const back = req.body?.back;
  return typeof back === 'string' && /^\/(?![/\\])/.test(back) ? back : '/';
}

function intParam(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v;
  if (typeof v !== 'string' || !/^\d{1,15}$/.test(v)) return undefined;
  const n = Number(v);
  return n > 0 ? n : undefined;
}

/**
 * A path inside a snapshot as it travels in URLs and forms: base64url of its exact bytes
 * (names need not be UTF-8). Missing = the root. Anything else is a 400.
 */
export function pathParam(v: unknown): Buffer {
  if (v === undefined || v === '') return Buffer.alloc(0);
  if (typeof v !== 'string' || !/^[A-Za-z0-9_-]{1,8192}$/.test(v)) throw new WebPortError(400, 'path: expected the base64url bytes of a path');
  return Buffer.from(v, 'base64url');
}

/**
 * `attachment` with an ASCII fallback name and the RFC 5987 UTF-8 form. Bytes that are
 * not UTF-8 become U+FFFD in the UTF-8 form and `_` in the fallback, so any name is safe.
 */
export function contentDisposition(name: Buffer): string {
  const text = name.toString('utf8');
  const ascii = text.replace(/[^\x20-\x7e]|["\\%;]/g, '_') || 'download';
  const star = encodeURIComponent(text).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${star}`;
}

/** Writes with backpressure; rejects when the client has gone. */
function writeChunk(res: Response, chunk: Buffer): Promise<void> {
  if (res.destroyed || res.writableEnded) return Promise.reject(new Error('client went away'));
  if (res.write(chunk)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new Error('client went away'));
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

function parseScope(kind: unknown, name: unknown): BandwidthScope {
  if (kind === 'node') return { kind: 'node' };
  if ((kind === 'target' || kind === 'job') && typeof name === 'string' && name.length > 0 && name.length <= 200) return { kind, name };
  throw new WebPortError(400, 'scope: expected node, or target or job with a name');
}

/** `512KiB/s` / a number of bytes/s / `off` or null (no limit) / `default` (back to node.cfg). */
function parseLimit(v: unknown): number | null | 'default' {
  if (v === null) return null;
  if (typeof v === 'number' && Number.isFinite(v) && v >= 1) return Math.floor(v);
  if (typeof v === 'string') {
    const t = v.trim();
    if (/^default$/i.test(t)) return 'default';
    try {
      return parseRate(t);
    } catch (err) {
      if (err instanceof UnitError) throw new WebPortError(400, `limit: found ${JSON.stringify(t.slice(0, 40))}, expected ${err.message}, or default`);
      throw err;
    }
  }
  throw new WebPortError(400, 'limit: expected a rate such as 512KiB/s, off, or default');
}
