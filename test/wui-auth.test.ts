import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { systemClock, type Clock } from '../src/node/clock.js';
import { createWebApp, type NodeControls } from '../src/wui/app.js';
import { hostnameOf } from '../src/wui/auth.js';
import { listenWeb, type WebServer } from '../src/wui/server.js';
import type { NodeStatus } from '../src/wui/status.js';

const TOKEN = 'test-token-0123456789abcdefghijklmnopqrstuvwxyz';

/** Real time, except that penalty sleeps are recorded and skipped. */
function fastClock(): Clock & { slept: number[] } {
  const slept: number[] = [];
  return { now: () => systemClock.now(), nowMs: () => systemClock.nowMs(), sleep: async (ms) => void slept.push(ms), slept };
}

const status = async (): Promise<NodeStatus> => ({
  nickname: 'test-node',
  startedAt: '2026-01-01T00:00:00.000Z',
  now: '2026-01-01T00:00:01.000Z',
  running: true,
  jobs: [
    {
      name: 'b1',
      source: '/home/me/<Photos>',
      target: 'local:b1',
      schedule: 'every 1d',
      allowedTimes: '2200-0800',
      timezone: 'Europe/Berlin',
      state: 'idle',
      label: 'idle',
      paused: false,
      enabled: true,
      nextStartAt: null,
      nextStartReason: null,
      window: '22:00-08:00',
      lastResult: null,
      lastCompletedAt: null,
      lastError: null,
      progress: null,
    },
  ],
});

/** Controls that record what they were asked to do. */
function recordingControls(): NodeControls & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    hasJob: (job) => job === 'b1',
    pause: async (job) => void calls.push(`pause ${job ?? 'all'}`),
    resume: async (job) => void calls.push(`resume ${job ?? 'all'}`),
    runNow: async (job) => (calls.push(`run ${job}`), 'queued'),
    cancel: async (job) => (calls.push(`cancel ${job}`), true),
  };
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(server: WebServer, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  const url = new URL(path, server.url);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

describe('status page access control', () => {
  let server: WebServer;
  const clock = fastClock();
  const controls = recordingControls();
  before(async () => {
    server = await listenWeb(createWebApp({ clock, token: TOKEN, hostnames: ['backup.lan'], status, controls }), '127.0.0.1', 0);
  });
  after(() => server.close());

  async function loginCookie(): Promise<string> {
    const r = await call(server, `/login?token=${TOKEN}`);
    const setCookie = ([] as string[]).concat(r.headers['set-cookie'] ?? [])[0]!;
    return setCookie.split(';')[0]!;
  }

  test('pages and API answer 401 without a token, with a wrong token, and a penalty delay is taken', async () => {
    const before = clock.slept.length;
    for (const path of ['/', '/api/v1/status', '/static/app.css']) {
      assert.equal((await call(server, path)).status, 401, path);
      assert.equal((await call(server, path, { headers: { authorization: 'Bearer wrong' } })).status, 401, path);
      assert.equal((await call(server, path, { headers: { cookie: 'nightjar_session=forged' } })).status, 401, path);
    }
    assert.equal((await call(server, '/login?token=wrong')).status, 401);
    assert.ok(clock.slept.length - before >= 10, 'every failure is delayed');
    assert.ok(clock.slept.every((ms) => ms >= 1000));
  });

  test('the bearer token opens the API', async () => {
    const r = await call(server, '/api/v1/status', { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 200);
    assert.equal((JSON.parse(r.body) as NodeStatus).jobs[0]!.name, 'b1');
  });

  test('the login link sets an HttpOnly SameSite=Strict cookie and redirects away from the token', async () => {
    const r = await call(server, `/login?token=${TOKEN}`);
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, '/');
    const cookie = ([] as string[]).concat(r.headers['set-cookie'] ?? [])[0]!;
    assert.match(cookie, /HttpOnly/);
    assert.match(cookie, /SameSite=Strict/);
    assert.ok(!cookie.includes(TOKEN), 'the cookie is not the token');
    const page = await call(server, '/', { headers: { cookie: await loginCookie() } });
    assert.equal(page.status, 200);
    assert.match(page.body, /test-node/);
    assert.match(page.body, /&lt;Photos&gt;/, 'job values are escaped');
  });

  test('a foreign Host header is refused with 403 even with a valid token; configured names pass', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    assert.equal((await call(server, '/api/v1/status', { headers: { ...auth, host: 'evil.example' } })).status, 403);
    assert.equal((await call(server, '/api/v1/status', { headers: { ...auth, host: 'backup.lan:8080' } })).status, 200);
    assert.equal((await call(server, '/api/v1/status', { headers: { ...auth, host: 'localhost' } })).status, 200);
  });

  test('a POST with the session cookie but without the CSRF token is refused with 403', async () => {
    const cookie = await loginCookie();
    const r = await call(server, '/api/v1/pause', { method: 'POST', headers: { cookie } });
    assert.equal(r.status, 403);
    assert.match(r.body, /CSRF/);
    const form = await call(server, '/jobs/b1/pause', { method: 'POST', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: '_csrf=wrong' });
    assert.equal(form.status, 403);
    assert.deepEqual(controls.calls, [], 'nothing was done');
  });

  test('with the CSRF token from the page, the cookie session can pause and resume; forms redirect back', async () => {
    const cookie = await loginCookie();
    const page = await call(server, '/', { headers: { cookie } });
    const csrf = /name="csrf-token" content="([^"]+)"/.exec(page.body)![1]!;
    const api = await call(server, '/api/v1/jobs/b1/pause', { method: 'POST', headers: { cookie, 'x-csrf-token': csrf } });
    assert.equal(api.status, 200);
    assert.deepEqual(JSON.parse(api.body), { job: 'b1', action: 'pause', result: 'paused' });
    const form = await call(server, '/resume', {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: `_csrf=${encodeURIComponent(csrf)}`,
    });
    assert.equal(form.status, 303);
    assert.deepEqual(controls.calls.splice(0), ['pause b1', 'resume all']);
  });

  test('bearer callers need no CSRF token; an unknown job is 404 and GET never changes state', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    assert.equal((await call(server, '/api/v1/jobs/b1/run', { method: 'POST', headers: auth })).status, 200);
    assert.equal((await call(server, '/api/v1/jobs/nope/pause', { method: 'POST', headers: auth })).status, 404);
    assert.equal((await call(server, '/api/v1/jobs/b1/pause', { headers: auth })).status, 404);
    assert.deepEqual(controls.calls.splice(0), ['run b1']);
  });

  test('security headers are set and the token never appears in any response', async () => {
    const cookie = await loginCookie();
    for (const path of ['/', '/api/v1/status', '/static/app.css', '/nope']) {
      const r = await call(server, path, { headers: { cookie } });
      assert.ok(!r.body.includes(TOKEN), path);
      assert.match(String(r.headers['content-security-policy']), /frame-ancestors 'none'/);
      assert.match(String(r.headers['content-security-policy']), /script-src 'self'/);
      assert.equal(r.headers['referrer-policy'], 'no-referrer');
    }
  });
});

test('a wrong token is answered only after about a second (real clock)', async () => {
  const server = await listenWeb(createWebApp({ clock: systemClock, token: TOKEN, hostnames: [], status }), '127.0.0.1', 0);
  try {
    const started = performance.now();
    assert.equal((await call(server, '/api/v1/status', { headers: { authorization: 'Bearer nope' } })).status, 401);
    assert.ok(performance.now() - started >= 900);
  } finally {
    await server.close();
  }
});

test('hostnameOf parses host headers with ports and IPv6 brackets', () => {
  assert.equal(hostnameOf('localhost:3456'), 'localhost');
  assert.equal(hostnameOf('[::1]:80'), '::1');
  assert.equal(hostnameOf('Backup.LAN'), 'backup.lan');
  assert.equal(hostnameOf('a:b:c'), null);
  assert.equal(hostnameOf(undefined), null);
});
