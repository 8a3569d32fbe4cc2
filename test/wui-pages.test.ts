import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { systemClock } from '../src/node/clock.js';
import { createWebApp } from '../src/wui/app.js';
import { listenWeb } from '../src/wui/server.js';
import type { NodeStatus } from '../src/wui/status.js';
import { runCli, startCli, tempDir, type CliProcess } from './helpers/cli.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

function call(base: string, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, base), { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({ status: res.statusCode!, headers: res.headers, body, text: body.toString('utf8') });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Reads an event stream until `count` events arrived (or the stream ends); returns them and whether it ended. */
function readEvents(base: string, headers: Record<string, string>, count: number, timeoutMs: number): Promise<{ status: number; events: string[]; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request(new URL('/api/v1/events/stream', base), { headers }, (res) => {
      let buf = '';
      const events: string[] = [];
      const timer = setTimeout(() => {
        req.destroy();
        resolve({ status: res.statusCode!, events, ended: false });
      }, timeoutMs);
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (/^event: status$/m.test(block)) events.push(block);
        }
        if (events.length >= count) {
          clearTimeout(timer);
          req.destroy();
          resolve({ status: res.statusCode!, events, ended: false });
        }
      });
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode!, events, ended: true });
      });
      res.on('error', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode!, events, ended: true });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64url');
/** `café.txt` with the é as Latin-1 (0xE9): not UTF-8. */
const LATIN1_NAME = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]);

describe('status pages of a running node (real server on port 0)', () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let node: CliProcess;
  let dir: string;
  let base: string;
  let token: string;
  let shareToken: string;
  let passphrase: string;
  let snapshotId: string;
  let csrf: string;
  let cookie: string;
  const owner = () => ({ authorization: `Bearer ${token}` });
  /** Every response body and header seen, for the secrets check. */
  const seen: string[] = [];
  const get = async (path: string, headers: Record<string, string> = owner(), opts: { method?: string; body?: string } = {}) => {
    const r = await call(base, path, { headers, ...opts });
    seen.push(`${path} ${JSON.stringify(r.headers)} ${r.body.toString('latin1')}`);
    return r;
  };

  before(async () => {
    ({ dir: root, cleanup } = await tempDir('nightjar-wui-'));
    const source = join(root, 'photos');
    await mkdir(join(source, 'sub'), { recursive: true });
    await writeFile(join(source, 'a.txt'), 'alpha\n');
    await writeFile(Buffer.concat([Buffer.from(join(source, 'sub') + '/'), LATIN1_NAME]), 'latin-1 café\n');
    dir = join(root, 'node');
    assert.equal((await runCli(['create-node', dir, '--source', source])).code, 0);
    const cfgFile = join(dir, 'node.cfg');
    await writeFile(cfgFile, (await readFile(cfgFile, 'utf8')).replace(/^\[node\]$/m, '[node]\nweb.port = 0'));
    node = startCli(['start', '-d', dir]);
    base = /open the status page: (http:\/\/[^/\s]+)\//.exec(await node.waitFor(/open the status page: \S+/))![1]!;
    await node.waitFor(/b1: completed, snapshot [0-9a-f]+/, 60_000);
    token = (await readFile(join(dir, 'private', 'api_auth_token'), 'utf8')).trim();
    shareToken = (await readFile(join(dir, 'private', 'readonly_token'), 'utf8')).trim();
    passphrase = (await readFile(join(dir, 'private', 'passphrase'), 'utf8')).trim();
    const login = await call(base, `/login?token=${encodeURIComponent(token)}`);
    cookie = ([] as string[]).concat(login.headers['set-cookie'] ?? [])[0]!.split(';')[0]!;
    const page = await get('/', { cookie });
    csrf = /name="csrf-token" content="([^"]+)"/.exec(page.text)![1]!;
    const snaps = JSON.parse((await get('/api/v1/snapshots')).text) as { targets: Array<{ snapshots: Array<{ id: string }> }> };
    snapshotId = snaps.targets[0]!.snapshots[0]!.id;
  });
  after(async () => {
    if (node && node.child.exitCode === null) {
      node.child.kill('SIGTERM');
      await node.exited;
    }
    await cleanup();
  });

  test('pages, API and the event stream answer 401 without a token and with a wrong one', async () => {
    // In parallel: every failure costs a second, and more than 10 a minute would be 429.
    const paths = ['/jobs/b1', '/snapshots', '/api/v1/events?job=b1'];
    const results = await Promise.all([
      ...paths.map((p) => call(base, p)),
      ...paths.map((p) => call(base, p, { headers: { authorization: 'Bearer wrong-token' } })),
      readEvents(base, {}, 1, 5000),
      readEvents(base, { authorization: 'Bearer wrong-token' }, 1, 5000),
    ]);
    for (const r of results) assert.equal(r.status, 401);
  });

  test('a foreign Host header is refused with 403; POSTs from the cookie without the CSRF token are 403 and change nothing', async () => {
    assert.equal((await call(base, '/snapshots', { headers: { ...owner(), host: 'attacker.example' } })).status, 403);
    assert.equal((await call(base, '/api/v1/events/stream', { headers: { ...owner(), host: 'attacker.example:80' } })).status, 403);
    const form = { cookie, 'content-type': 'application/x-www-form-urlencoded' };
    assert.equal((await call(base, '/jobs/b1/pause', { method: 'POST', headers: form, body: '' })).status, 403);
    assert.equal((await call(base, '/bandwidth', { method: 'POST', headers: form, body: 'scope=node&limit=1KiB/s' })).status, 403);
    const dest = join(root, 'never');
    const restore = await call(base, `/snapshots/local/${snapshotId}/restore`, { method: 'POST', headers: form, body: `dest=${encodeURIComponent(dest)}` });
    assert.equal(restore.status, 403);
    const status = JSON.parse((await get('/api/v1/status')).text) as NodeStatus;
    assert.equal(status.jobs[0]!.paused, false);
    await assert.rejects(readdir(dest));
  });

  test('the event stream sends the status about once a second', async () => {
    const started = performance.now();
    const r = await readEvents(base, { cookie }, 3, 6000);
    assert.equal(r.status, 200);
    assert.equal(r.events.length, 3);
    assert.ok(performance.now() - started >= 1500, 'events are paced');
    const data = JSON.parse(/^data: (.*)$/m.exec(r.events[2]!)![1]!) as { status: NodeStatus; view: { jobs: Record<string, { label: string }> } };
    assert.equal(data.status.jobs[0]!.name, 'b1');
    assert.ok(data.view.jobs.b1!.label);
  });

  test('job, events and snapshot pages render; the JSON API lists runs and events of a job', async () => {
    const job = await get('/jobs/b1', { cookie });
    assert.equal(job.status, 200);
    assert.match(job.text, /<h2>History<\/h2>/);
    assert.match(job.text, /completed/);
    assert.match(job.text, /<svg[^>]+role="img"/, 'a rate chart');
    assert.equal((await get('/jobs/nope', { cookie })).status, 404);
    const runs = JSON.parse((await get('/api/v1/jobs/b1/runs?limit=5')).text) as { runs: Array<{ result: string; stats: { filesNew?: number } }> };
    assert.equal(runs.runs[0]!.result, 'completed');
    assert.equal(runs.runs[0]!.stats.filesNew, 2);
    const events = JSON.parse((await get('/api/v1/events?job=b1')).text) as { events: Array<{ job: string }> };
    assert.ok(events.events.length > 0);
    assert.ok(events.events.every((e) => e.job === 'b1'));
    const evPage = await get('/events?job=b1', { cookie });
    assert.match(evPage.text, /<option value="b1" selected>/);
    const snaps = await get('/snapshots', { cookie });
    assert.match(snaps.text, new RegExp(snapshotId.slice(0, 12)));
    const root_ = await get(`/snapshots/local/${snapshotId}`, { cookie });
    assert.match(root_.text, /a\.txt/);
    assert.match(root_.text, /sub\//);
  });

  test('a file whose name is not UTF-8 downloads byte for byte with a safe Content-Disposition', async () => {
    const tree = JSON.parse((await get(`/api/v1/snapshots/local/${snapshotId}/tree?path=${b64('sub')}`)).text) as { entries: Array<{ nameBase64: string }> };
    assert.deepEqual(tree.entries.map((e) => Buffer.from(e.nameBase64, 'base64url')), [LATIN1_NAME]);
    const page = await get(`/snapshots/local/${snapshotId}?path=${b64('sub')}`, { cookie });
    const link = /href="([^"]*\/file\?path=[^"]+)"/.exec(page.text)![1]!;
    const r = await get(link.replace(/&amp;/g, '&'), { cookie });
    assert.equal(r.status, 200);
    assert.equal(r.text, 'latin-1 café\n');
    const cd = String(r.headers['content-disposition']);
    assert.match(cd, /^attachment; filename="caf_\.txt"; filename\*=UTF-8''caf%EF%BF%BD\.txt$/);
    assert.equal(r.headers['content-type'], 'application/octet-stream');
  });

  test('path traversal in browse, download and restore is refused with 4xx', async () => {
    const snap = `/api/v1/snapshots/local/${snapshotId}`;
    for (const p of ['..', 'sub/../..', '../../etc/passwd', 'sub/../../../etc']) {
      const browse = await get(`${snap}/tree?path=${b64(p)}`);
      assert.equal(browse.status, 400, `browse ${p}`);
      const dl = await get(`${snap}/file?path=${b64(p)}`);
      assert.equal(dl.status, 400, `download ${p}`);
    }
    assert.equal((await get(`${snap}/file?path=../etc/passwd`)).status, 400, 'a raw path is not a path parameter');
    assert.equal((await get(`${snap}/file?path=${b64('sub')}`)).status, 400, 'a directory is not downloadable');
    assert.equal((await get(`${snap}/file?path=${b64('missing.txt')}`)).status, 404);
    assert.equal((await get(`/api/v1/snapshots/local/${'0'.repeat(64)}/tree`)).status, 404);
    assert.equal((await get(`/api/v1/snapshots/nope/${snapshotId}/tree`)).status, 404);
    const post = (body: object) => get(`${snap}/restore`, { ...owner(), 'content-type': 'application/json' }, { method: 'POST', body: JSON.stringify(body) });
    const cases: Array<[object, number]> = [
      [{ path: b64('../x'), dest: join(root, 'r1') }, 400],
      [{ path: '', dest: 'relative/dir' }, 400],
      [{ path: '', dest: `${root}/a/../../etc` }, 400],
      [{ path: '', dest: join(dir, 'private', 'loot') }, 400],
      [{ path: '', dest: '/' }, 400],
      [{ path: '', dest: join(root, 'photos') }, 409],
      [{ path: b64('nope'), dest: join(root, 'r2') }, 404],
    ];
    for (const [body, status] of cases) assert.equal((await post(body)).status, status, JSON.stringify(body));
    await assert.rejects(readdir(join(dir, 'private', 'loot')));
  });

  test('a restore started from the API runs on the node and equals the source', async () => {
    const dest = join(root, 'restored');
    const r = await get(`/api/v1/snapshots/local/${snapshotId}/restore`, { ...owner(), 'content-type': 'application/json' }, { method: 'POST', body: JSON.stringify({ path: b64('sub'), dest }) });
    assert.equal(r.status, 202, r.text);
    let state = '';
    for (let i = 0; i < 100 && state !== 'done'; i++) {
      state = (JSON.parse((await get('/api/v1/restores')).text) as { restores: Array<{ state: string; error: string | null }> }).restores[0]!.state;
      assert.notEqual(state, 'failed');
      if (state !== 'done') await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(state, 'done');
    assert.equal(await readFile(Buffer.concat([Buffer.from(dest + '/'), LATIN1_NAME]), 'utf8'), 'latin-1 café\n');
  });

  test('bandwidth changes through the API take effect and bad limits are 400', async () => {
    const json = { ...owner(), 'content-type': 'application/json' };
    const ok = await get('/api/v1/bandwidth', json, { method: 'POST', body: JSON.stringify({ scope: 'job', name: 'b1', limit: '1MiB/s' }) });
    assert.equal(ok.status, 200, ok.text);
    const status = JSON.parse((await get('/api/v1/bandwidth')).text) as { limits: Array<{ scope: { kind: string; name?: string }; effectiveBytesPerSecond: number | null }> };
    assert.equal(status.limits.find((l) => l.scope.kind === 'job' && l.scope.name === 'b1')!.effectiveBytesPerSecond, 1024 * 1024);
    assert.equal((await get('/api/v1/bandwidth', json, { method: 'POST', body: JSON.stringify({ scope: 'job', name: 'b1', limit: 'fast' }) })).status, 400);
    assert.equal((await get('/api/v1/bandwidth', json, { method: 'POST', body: JSON.stringify({ scope: 'job', name: 'nope', limit: 'off' }) })).status, 404);
    assert.equal((await get('/api/v1/bandwidth', json, { method: 'POST', body: JSON.stringify({ scope: 'job', name: 'b1', limit: 'default' }) })).status, 200);
    const form = await get('/bandwidth', { cookie, 'content-type': 'application/x-www-form-urlencoded' }, { method: 'POST', body: `_csrf=${encodeURIComponent(csrf)}&scope=node&limit=off&back=/jobs/b1` });
    assert.equal(form.status, 303);
    assert.equal(form.headers.location, '/jobs/b1');
  });

  test('the read-only share link shows status without controls and refuses every control with 403', async () => {
    const login = await call(base, `/login?token=${encodeURIComponent(shareToken)}`);
    assert.equal(login.status, 303);
    const ro = ([] as string[]).concat(login.headers['set-cookie'] ?? [])[0]!.split(';')[0]!;
    assert.notEqual(ro, cookie);
    const page = await get('/', { cookie: ro });
    assert.equal(page.status, 200);
    assert.match(page.text, /read-only/);
    assert.doesNotMatch(page.text, /<form method="post"/);
    assert.doesNotMatch(page.text, new RegExp(csrf), 'no CSRF token for a read-only session');
    assert.equal((await get('/jobs/b1', { cookie: ro })).status, 200);
    assert.equal((await get('/api/v1/status', { authorization: `Bearer ${shareToken}` })).status, 200);
    const r = await readEvents(base, { cookie: ro }, 1, 4000);
    assert.equal(r.status, 200);
    // Controls: with its cookie (even with the owner's CSRF token) and as a bearer token.
    for (const path of ['/api/v1/jobs/b1/pause', '/api/v1/pause', '/jobs/b1/run', '/api/v1/bandwidth', `/api/v1/snapshots/local/${snapshotId}/restore`]) {
      assert.equal((await get(path, { cookie: ro, 'x-csrf-token': csrf }, { method: 'POST' })).status, 403, path);
      assert.equal((await get(path, { authorization: `Bearer ${shareToken}` }, { method: 'POST' })).status, 403, path);
    }
    // Backed-up names and contents are not status.
    assert.equal((await get('/snapshots', { cookie: ro })).status, 403);
    assert.equal((await get(`/api/v1/snapshots/local/${snapshotId}/file?path=${b64('a.txt')}`, { cookie: ro })).status, 403);
    assert.equal((JSON.parse((await get('/api/v1/status')).text) as NodeStatus).jobs[0]!.paused, false);
  });

  test('no response ever carries the token, the share token or the passphrase', async () => {
    for (const path of ['/', '/jobs/b1', '/events', '/snapshots', `/snapshots/local/${snapshotId}`, '/api/v1/status', '/api/v1/jobs/b1', '/api/v1/bandwidth', '/api/v1/snapshots', '/api/v1/restores', '/static/app.js', '/nope']) {
      await get(path, { cookie });
      await get(path);
    }
    const stream = await readEvents(base, { cookie }, 1, 4000);
    seen.push(...stream.events);
    assert.ok(seen.length > 40);
    for (const text of seen) {
      for (const [what, secret] of [
        ['API token', token],
        ['share token', shareToken],
        ['passphrase', passphrase],
        ['URL-encoded token', encodeURIComponent(token)],
      ] as const) {
        assert.ok(!text.includes(secret), `${what} in ${text.slice(0, 80)}`);
      }
    }
  });

  test('the event stream ends when the node stops', async () => {
    const streaming = readEvents(base, { cookie }, 1000, 20_000);
    await new Promise((r) => setTimeout(r, 1500));
    node.child.kill('SIGTERM');
    const r = await streaming;
    assert.equal(r.ended, true);
    assert.ok(r.events.length >= 1);
    assert.equal((await node.exited).code, 0, node.output());
  });
});

test('the storage page lists clients with usage and alerts; without a storage service it is 404', async () => {
  const status = async (): Promise<NodeStatus> => ({ nickname: 'n', startedAt: null, now: '2026-01-01T00:00:00.000Z', running: true, jobs: [] });
  const storage = {
    clients: async () => [
      { name: 'alice', appendOnly: true, quota: 1 << 30, usedBytes: 1 << 20, objects: 3, createdAt: '2026-01-01T00:00:00.000Z', lastSeenAt: null, lastBackupAt: null },
      { name: '<bob>', appendOnly: false, quota: null, usedBytes: 0, objects: 0, createdAt: '2026-01-01T00:00:00.000Z', lastSeenAt: null, lastBackupAt: null },
    ],
    alerts: async () => [{ name: '<bob>', message: 'client "<bob>" has not completed a backup in 4d' }],
  };
  const token = 'storage-test-token-0123456789';
  const withStorage = await listenWeb(createWebApp({ clock: systemClock, token, hostnames: [], status, storage }), '127.0.0.1', 0);
  const without = await listenWeb(createWebApp({ clock: systemClock, token, hostnames: [], status }), '127.0.0.1', 0);
  try {
    const auth = { authorization: `Bearer ${token}` };
    const page = await call(withStorage.url, '/storage', { headers: auth });
    assert.equal(page.status, 200);
    assert.match(page.text, /alice/);
    assert.match(page.text, /1 MiB/);
    assert.match(page.text, /&lt;bob&gt;/);
    assert.match(page.text, /role="alert"/);
    const api = JSON.parse((await call(withStorage.url, '/api/v1/storage', { headers: auth })).text) as { clients: unknown[]; alerts: unknown[] };
    assert.equal(api.clients.length, 2);
    assert.equal(api.alerts.length, 1);
    assert.equal((await call(without.url, '/storage', { headers: auth })).status, 404);
    assert.doesNotMatch((await call(without.url, '/', { headers: auth })).text, /href="\/storage"/);
  } finally {
    await withStorage.close();
    await without.close();
  }
});
