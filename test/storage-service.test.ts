import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../src/node/clock.js';
import { findStaleClients } from '../src/server/storage-service.js';
import { rawRequest, startStorageFixture, type RawResponse, type StorageFixture } from './helpers/storage-node.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Every file and directory under `dir` with size and mtime: any change shows. */
async function snapshotTree(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      // A temp file the service removes between readdir and lstat is simply gone.
      const st = await fsp.lstat(p).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      });
      if (!st) continue;
      out.push(`${relative(dir, p)} ${e.isDirectory() ? 'dir' : st.size} ${st.mtimeMs}`);
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out.sort();
}

describe('storage service over HTTPS', () => {
  let fx: StorageFixture;
  let alice: { token: string; deleteToken: string | null };
  let bob: { token: string; deleteToken: string | null };
  let quoted: { token: string; deleteToken: string | null };

  const req = (token: string | null, method: string, target: string, body?: Buffer, extra: string[] = []): Promise<RawResponse> => {
    const head = [`${method} ${target} HTTP/1.1`, 'Host: storage'];
    if (token !== null) head.push(`Authorization: Bearer ${token}`);
    if (body !== undefined) head.push(`Content-Length: ${body.length}`);
    return rawRequest(fx.service, [...head, ...extra].join('\r\n'), body ?? '');
  };
  const put = (token: string, name: string, body: Buffer, digest = sha256(body)) =>
    req(token, 'PUT', `/v1/objects/${name}`, body, [`x-nightjar-sha256: ${digest}`]);

  before(async () => {
    fx = await startStorageFixture({
      storage: ['max_object_size = 64KiB'],
      clients: ['bob.append_only = false', 'quoted.quota = 100KiB'],
    });
    alice = await fx.addClient('alice', { deleteToken: true });
    bob = await fx.addClient('bob');
    quoted = await fx.addClient('quoted');
  });
  after(() => fx.cleanup());

  it('stores, stats, reads (with ranges) and lists an object, answering with the right codes', async () => {
    const data = randomBytes(5000);
    assert.equal((await put(alice.token, 'data/ab/obj1', data)).status, 201);
    const head = await req(alice.token, 'HEAD', '/v1/objects/data/ab/obj1');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '5000');
    const ranged = await req(alice.token, 'GET', '/v1/objects/data/ab/obj1', undefined, ['Range: bytes=100-199']);
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers['content-range'], 'bytes 100-199/5000');
    assert.deepEqual(Buffer.from(ranged.body, 'latin1'), data.subarray(100, 200));
    const outside = await req(alice.token, 'GET', '/v1/objects/data/ab/obj1', undefined, ['Range: bytes=4990-5000']);
    assert.equal(outside.status, 416);
    assert.equal(outside.headers['content-range'], 'bytes */5000');
    assert.equal((await req(alice.token, 'GET', '/v1/objects/data/ab/missing')).status, 404);
    const list = await req(alice.token, 'GET', '/v1/objects?prefix=data/');
    assert.equal(list.status, 200);
    assert.deepEqual(JSON.parse(list.body), { objects: [{ name: 'data/ab/obj1', size: 5000 }], next: null });
    assert.equal((await req(alice.token, 'POST', '/v1/objects/data/ab/obj1')).status, 405);
    assert.equal((await req(alice.token, 'GET', '/v2/anything')).status, 404);
  });

  it('lists in pages that together hold every object exactly once, in path order', async () => {
    const names = ['p/a-b', 'p/a/x', 'p/a/y/z', 'p/a.c', 'p/b', ...Array.from({ length: 20 }, (_, i) => `p/n/${String(i).padStart(2, '0')}`)];
    for (const n of names) assert.equal((await put(bob.token, n, Buffer.from(n))).status, 201);
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    do {
      const target: string = `/v1/objects?prefix=p/&limit=7${after ? `&after=${after}` : ''}`;
      const page = JSON.parse((await req(bob.token, 'GET', target)).body) as { objects: Array<{ name: string; size: number }>; next: string | null };
      for (const o of page.objects) {
        assert.equal(o.size, o.name.length);
        seen.push(o.name);
      }
      after = page.next;
      pages++;
    } while (after !== null);
    assert.ok(pages >= 4);
    const bySegments = (a: string, b: string) => {
      const x = a.split('/');
      const y = b.split('/');
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i]! < y[i]! ? -1 : 1;
      return x.length - y.length;
    };
    assert.deepEqual(seen, [...names].sort(bySegments));
  });

  it('keeps clients apart: Y cannot list, read, stat or delete X\'s objects', async () => {
    const data = Buffer.from('alice private');
    assert.equal((await put(alice.token, 'snapshots/s-alice', data)).status, 201);
    const list = JSON.parse((await req(bob.token, 'GET', '/v1/objects')).body) as { objects: Array<{ name: string }> };
    assert.ok(!list.objects.some((o) => o.name === 'snapshots/s-alice'));
    assert.equal((await req(bob.token, 'GET', '/v1/objects/snapshots/s-alice')).status, 404);
    assert.equal((await req(bob.token, 'HEAD', '/v1/objects/snapshots/s-alice')).status, 404);
    assert.equal((await req(bob.token, 'DELETE', '/v1/objects/snapshots/s-alice')).status, 204); // bob's own (absent) object
    const still = await req(alice.token, 'GET', '/v1/objects/snapshots/s-alice');
    assert.equal(still.status, 200);
    assert.equal(still.body, 'alice private');
    // Bob writing the same name makes his own object, not a conflict with alice's.
    assert.equal((await put(bob.token, 'snapshots/s-alice', Buffer.from('bob'))).status, 201);
    assert.equal((await req(alice.token, 'GET', '/v1/objects/snapshots/s-alice')).body, 'alice private');
  });

  it('append-only: DELETE is 403 and overwrite 409 (in every mode); locks/ and the delete token may delete', async () => {
    const data = Buffer.from('original');
    assert.equal((await put(alice.token, 'index/i1', data)).status, 201);
    const del = await req(alice.token, 'DELETE', '/v1/objects/index/i1');
    assert.equal(del.status, 403);
    assert.match(JSON.parse(del.body).message, /append-only/);
    const over = await put(alice.token, 'index/i1', Buffer.from('replaced'));
    assert.equal(over.status, 409);
    assert.equal(over.headers['x-nightjar-existing-sha256'], sha256(data));
    assert.equal((await req(alice.token, 'GET', '/v1/objects/index/i1')).body, 'original');
    // bob is not append-only, yet overwriting is still refused.
    assert.equal((await put(bob.token, 'index/b1', data)).status, 201);
    assert.equal((await put(bob.token, 'index/b1', Buffer.from('other'))).status, 409);
    assert.equal((await req(bob.token, 'DELETE', '/v1/objects/index/b1')).status, 204);
    // Own locks may always go; the delete token may prune.
    assert.equal((await put(alice.token, 'locks/l1', data)).status, 201);
    assert.equal((await req(alice.token, 'DELETE', '/v1/objects/locks/l1')).status, 204);
    assert.equal((await req(alice.deleteToken!, 'DELETE', '/v1/objects/index/i1')).status, 204);
    assert.equal((await req(alice.token, 'HEAD', '/v1/objects/index/i1')).status, 404);
    const info = JSON.parse((await req(alice.deleteToken!, 'GET', '/v1/info')).body);
    assert.equal(info.append_only, true);
    assert.equal(info.can_delete, true);
  });

  it('hostile names on the wire get 400 and touch nothing on disk', async () => {
    await put(alice.token, 'data/keep', Buffer.from('keep'));
    const before = await snapshotTree(fx.dir);
    const targets = [
      '/v1/objects/../x',
      '/v1/objects/../../node.cfg',
      '/v1/objects/data/../../bob/x',
      '/v1/objects/%2e%2e/x',
      '/v1/objects/%2E%2E/%2e%2e/escape',
      '/v1/objects/data%2F..%2F..%2Fx',
      '/v1/objects/a%2Fb',
      '/v1/objects/%2fetc/passwd',
      '/v1/objects//etc/passwd',
      '/v1/objects/a%00b',
      '/v1/objects/a\\..\\b',
      '/v1/objects/./x',
      '/v1/objects/..',
      '/v1/objects/.nj-tmp-x',
      '/v1/objects/data/',
      `/v1/objects/${'a'.repeat(1025)}`,
      `/v1/objects/${'abc/'.repeat(300)}x`,
      '/v1/objects/caf\xe9',
    ];
    for (const target of targets) {
      for (const method of ['PUT', 'GET', 'HEAD', 'DELETE']) {
        const body = method === 'PUT' ? Buffer.from('evil') : undefined;
        const extra = method === 'PUT' ? [`x-nightjar-sha256: ${sha256(Buffer.from('evil'))}`] : [];
        const res = await req(alice.deleteToken!, method, target, body, extra);
        assert.equal(res.status, 400, `${method} ${target} → ${res.status} ${res.body}`);
      }
    }
    // A raw NUL byte in the request line: the HTTP parser refuses it before we see it.
    assert.equal((await req(alice.token, 'GET', '/v1/objects/a\0b')).status, 400);
    for (const query of ['prefix=../', 'prefix=%2e%2e/', 'prefix=/etc', 'after=../x', 'prefix=a&prefix=b', 'limit=0', 'evil=1']) {
      const res = await req(alice.token, 'GET', `/v1/objects?${query}`);
      assert.equal(res.status, 400, `?${query} → ${res.status}`);
    }
    assert.deepEqual(await snapshotTree(fx.dir), before);
  });

  it('refuses a body over max_object_size with 413 before storing anything', async () => {
    const big = randomBytes(64 * 1024 + 1);
    const res = await put(bob.token, 'data/big', big);
    assert.equal(res.status, 413);
    assert.match(JSON.parse(res.body).message, /max_object_size of 64 KiB/);
    assert.equal((await req(bob.token, 'HEAD', '/v1/objects/data/big')).status, 404);
    // A body that lies about its size in Content-Length never gets read past it: 413 too.
    const liar = await rawRequest(
      fx.service,
      ['PUT /v1/objects/data/liar HTTP/1.1', 'Host: s', `Authorization: Bearer ${bob.token}`, 'Content-Length: 99999999999', `x-nightjar-sha256: ${'0'.repeat(64)}`].join('\r\n'),
      'x',
    );
    assert.equal(liar.status, 413);
    const chunked = await rawRequest(fx.service, ['PUT /v1/objects/data/ch HTTP/1.1', 'Host: s', `Authorization: Bearer ${bob.token}`, 'Transfer-Encoding: chunked', `x-nightjar-sha256: ${'0'.repeat(64)}`].join('\r\n'), '1\r\nx\r\n0\r\n\r\n');
    assert.equal(chunked.status, 411);
  });

  it('refuses uploads over the client\'s quota with 507 and a clear message', async () => {
    assert.equal((await put(quoted.token, 'data/q1', randomBytes(60 * 1024))).status, 201);
    const res = await put(quoted.token, 'data/q2', randomBytes(50 * 1024));
    assert.equal(res.status, 507);
    const body = JSON.parse(res.body);
    assert.equal(body.error, 'quota_exceeded');
    assert.match(body.message, /quota exceeded: client "quoted" stores 60 KiB of its 100 KiB quota; this object needs 50 KiB/);
    assert.equal((await req(quoted.token, 'HEAD', '/v1/objects/data/q2')).status, 404);
    assert.equal((await put(quoted.token, 'data/q3', randomBytes(30 * 1024))).status, 201);
    const info = JSON.parse((await req(quoted.token, 'GET', '/v1/info')).body);
    assert.equal(info.used_bytes, 90 * 1024);
    assert.equal(info.quota, 100 * 1024);
    assert.equal(info.free_bytes, 10 * 1024);
  });

  it('a digest mismatch is 400 and leaves no object and no temp file', async () => {
    const data = randomBytes(3000);
    const res = await put(bob.token, 'data/dd/bad', data, sha256(Buffer.from('something else')));
    assert.equal(res.status, 400);
    assert.equal(JSON.parse(res.body).error, 'digest_mismatch');
    assert.equal((await req(bob.token, 'HEAD', '/v1/objects/data/dd/bad')).status, 404);
    await assert.rejects(fsp.stat(join(fx.config.storage.path, 'bob', 'data', 'dd')), /ENOENT/); // not even the directory
    const leftovers = (await fsp.readdir(join(fx.config.storage.path, 'bob'))).filter((n) => n.startsWith('.'));
    assert.deepEqual(leftovers, []);
    assert.equal((await put(bob.token, 'data/dd/bad', data, 'xyz')).status, 400);
    assert.equal((await req(bob.token, 'PUT', '/v1/objects/data/dd/bad', data)).status, 400); // no digest at all
  });

  it('an upload aborted mid-body leaves nothing behind', async () => {
    const url = new URL(fx.service.url);
    const data = randomBytes(60_000);
    const before = await snapshotTree(join(fx.config.storage.path, 'bob'));
    await new Promise<void>((resolve, reject) => {
      const socket = tlsConnect({ host: url.hostname, port: Number(url.port), rejectUnauthorized: false }, () => {
        socket.write(
          [`PUT /v1/objects/data/ee/aborted HTTP/1.1`, 'Host: s', `Authorization: Bearer ${bob.token}`, `Content-Length: ${data.length}`, `x-nightjar-sha256: ${sha256(data)}`, '', ''].join('\r\n'),
        );
        socket.write(data.subarray(0, 30_000), () => setTimeout(() => (socket.destroy(), resolve()), 200));
      });
      socket.on('error', reject);
    });
    // The service notices the reset and removes its temp file.
    const deadline = systemClock.nowMs() + 3000;
    let after = await snapshotTree(join(fx.config.storage.path, 'bob'));
    while (after.join() !== before.join() && systemClock.nowMs() < deadline) {
      await systemClock.sleep(50);
      after = await snapshotTree(join(fx.config.storage.path, 'bob'));
    }
    assert.deepEqual(after, before);
    assert.equal((await req(bob.token, 'HEAD', '/v1/objects/data/ee/aborted')).status, 404);
    // The name is still free.
    assert.equal((await put(bob.token, 'data/ee/aborted', data)).status, 201);
  });

  it('a wrong or missing token is 401, answered only after about a second', async () => {
    for (const token of ['wrong-token-wrong-token-wrong-token', null]) {
      const t0 = systemClock.nowMs();
      const res = await req(token, 'GET', '/v1/info');
      assert.equal(res.status, 401);
      assert.ok(systemClock.nowMs() - t0 >= 900, `answered after ${systemClock.nowMs() - t0} ms`);
      assert.match(res.headers['www-authenticate'] ?? '', /^Bearer/);
    }
    // The token never reaches the log.
    assert.ok(fx.logs.some((l) => /refused a request from/.test(l)));
    assert.ok(!fx.logs.some((l) => l.includes('wrong-token')));
    for (const t of [alice.token, bob.token, quoted.token]) assert.ok(!fx.logs.some((l) => l.includes(t)));
  });

  it('records the reported backup, last seen, usage; a silent client becomes stale', async () => {
    const res = await req(bob.token, 'POST', '/v1/backup-completed', Buffer.from(JSON.stringify({ job: 'home', snapshot: 's1' })));
    assert.equal(res.status, 204);
    assert.equal((await req(bob.token, 'POST', '/v1/backup-completed', Buffer.from('[1,2'))).status, 400);
    const clients = await fx.service.clients();
    const b = clients.find((c) => c.name === 'bob')!;
    assert.equal(b.appendOnly, false);
    assert.equal(b.lastBackup?.job, 'home');
    assert.ok(b.lastSeenAt !== null && b.lastBackupAt !== null);
    assert.ok(b.objects > 20 && b.usedBytes > 0);
    const q = clients.find((c) => c.name === 'quoted')!;
    assert.equal(q.quota, 100 * 1024);
    assert.equal(q.usedBytes, 90 * 1024);
    const now = systemClock.nowMs();
    assert.deepEqual(await fx.service.staleClients(new Date(now + 60_000)), []);
    const stale = await fx.service.staleClients(new Date(now + 4 * 24 * 3600_000));
    assert.deepEqual(stale.map((s) => s.name).sort(), ['alice', 'bob', 'quoted']);
    assert.match(stale.find((s) => s.name === 'bob')!.message, /^client "bob" has not completed a backup in 4d/);
    assert.match(stale.find((s) => s.name === 'alice')!.message, /^client "alice" has never completed a backup \(added 4d/);
    // Activity survives a restart of the service.
    await fx.service.close();
    await fx.restart();
    const again = (await fx.service.clients()).find((c) => c.name === 'bob')!;
    assert.equal(again.lastBackupAt, b.lastBackupAt);
    assert.equal(again.lastSeenAt, b.lastSeenAt);
  });
});

describe('storage service limits', () => {
  it('keeps reserved_space free on the disk: 507', async () => {
    const fx = await startStorageFixture({ storage: ['reserved_space = 1000000TiB'] });
    try {
      const { token } = await fx.addClient('c');
      const body = Buffer.from('x');
      const res = await rawRequest(
        fx.service,
        ['PUT /v1/objects/data/x HTTP/1.1', 'Host: s', `Authorization: Bearer ${token}`, 'Content-Length: 1', `x-nightjar-sha256: ${sha256(body)}`].join('\r\n'),
        body,
      );
      assert.equal(res.status, 507);
      assert.equal(JSON.parse(res.body).error, 'insufficient_space');
      assert.match(JSON.parse(res.body).message, /reserved_space/);
    } finally {
      await fx.cleanup();
    }
  });

  it('rate-limits failed logins per address (429 once blocked) while a valid token still works', async () => {
    const fx = await startStorageFixture({ failedAuthDelayMs: 20 });
    try {
      const { token } = await fx.addClient('c');
      const bad = () => rawRequest(fx.service, 'GET /v1/info HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer nope-nope-nope-nope');
      for (let i = 0; i < 10; i++) assert.equal((await bad()).status, 401);
      const blocked = await bad();
      assert.equal(blocked.status, 429);
      assert.equal(blocked.headers['retry-after'], '60');
      const ok = await rawRequest(fx.service, `GET /v1/info HTTP/1.1\r\nHost: s\r\nAuthorization: Bearer ${token}`);
      assert.equal(ok.status, 200);
    } finally {
      await fx.cleanup();
    }
  });

  it('findStaleClients uses the registration time for a client that never reported', () => {
    const base = { appendOnly: true, quota: null, usedBytes: 0, objects: 0, lastSeenAt: null, lastBackup: null };
    const clients = [
      { ...base, name: 'new', createdAt: '2025-01-09T00:00:00Z', lastBackupAt: null },
      { ...base, name: 'old', createdAt: '2024-01-01T00:00:00Z', lastBackupAt: '2025-01-06T00:00:00Z' },
      { ...base, name: 'fresh', createdAt: '2024-01-01T00:00:00Z', lastBackupAt: '2025-01-09T12:00:00Z' },
    ];
    const stale = findStaleClients(clients, new Date('2025-01-10T00:00:00Z'), 3 * 24 * 3600_000);
    assert.deepEqual(stale.map((s) => s.name), ['old']);
    assert.equal(stale[0]!.message, 'client "old" has not completed a backup in 4d (last: 2025-01-06T00:00:00Z)');
  });
});
