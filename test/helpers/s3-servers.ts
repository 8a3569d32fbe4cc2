import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp, readdirSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../../src/node/clock.js';
import { withRetry } from '../../src/store/retrying-store.js';
import { openS3Store, type S3Store } from '../../src/store/s3-store.js';
import { NotFoundError, ObjectExistsError, StoreError, type Store } from '../../src/store/store.js';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { runStoreContract } from './store-contract.js';
import type { TargetConfig } from '../../src/node/config/types.js';

/** The project root (dist/test/helpers/ → ../../..). */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/**
 * The Swift launcher: a copy of the workplace's `shared/s3/swift-saio.sh` is kept in
 * test/fixtures so a clone anywhere (CI) has it.
 */
const SWIFT_SCRIPT = process.env.NIGHTJAR_SWIFT_SAIO ?? path.resolve(ROOT, 'test', 'fixtures', 's3', 'swift-saio.sh');

/** A running S3-compatible server for tests, on 127.0.0.1. */
export interface S3TestServer {
  readonly kind: 'swift' | 's3rver';
  /** `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
  /** A client with the right settings for this server (for test set-up and peeking). */
  readonly client: S3Client;
  /** Creates a bucket (names: 3–63 of [a-z0-9-]). */
  createBucket(name: string): Promise<void>;
  /** Stops the server and removes its state. */
  stop(): Promise<void>;
}

/** Why Swift tests cannot run here, or null when they can. */
export function swiftSkipReason(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v swift-proxy-server && command -v memcached'], { encoding: 'utf8' });
  if (found.status !== 0) {
    return 'OpenStack Swift is not installed (apt-get install -y --no-install-recommends swift-proxy swift-object swift-account swift-container memcached); .ci/run installs it';
  }
  return null;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A base port P with P..P+6 all free on 127.0.0.1 (swift-saio.sh uses seven), below the
 * kernel's ephemeral range (32768 up on Linux): a port that is free now but ephemeral can
 * be taken by any outgoing connection of the suite before Swift's servers bind it, and an
 * account server that failed to bind makes the proxy answer SlowDown for good.
 */
async function freePortBase(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 1_270) * 10;
    let ok = true;
    for (let p = base; p < base + 7 && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error('no run of 7 free ports found for Swift');
}

function makeClient(endpoint: string, accessKey: string, secretKey: string): S3Client {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: { accessKeyId: accessKey, secretAccessKey: secretKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

function killPids(dir: string): void {
  try {
    for (const f of readdirSync(path.join(dir, 'run'))) {
      const pid = Number(readFileSync(path.join(dir, 'run', f), 'utf8'));
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGTERM');
        } catch {
          /* gone */
        }
      }
    }
  } catch {
    /* no run dir */
  }
}

/** The last lines of each Swift server's log, for a failure message. */
function swiftLogTails(dir: string): string {
  const out: string[] = [];
  for (const n of ['proxy', 'account', 'container', 'object']) {
    try {
      const lines = readFileSync(path.join(dir, 'log', `${n}.log`), 'utf8').trimEnd().split('\n');
      out.push(`--- ${n}.log (last lines)`, ...lines.slice(-8));
    } catch {
      out.push(`--- ${n}.log missing`);
    }
  }
  return out.join('\n');
}

/**
 * Starts a one-node OpenStack Swift with s3api (`swift-saio.sh`) on a free run of
 * ports on 127.0.0.1, state in a temp directory. Takes ~10–15 s. Credentials
 * test:tester / testing. The servers are killed on stop() or when this process exits.
 */
export async function startSwift(): Promise<S3TestServer> {
  if (!existsSync(SWIFT_SCRIPT)) throw new Error(`Swift is installed but ${SWIFT_SCRIPT} is missing (set NIGHTJAR_SWIFT_SAIO)`);
  const dir = await fsp.mkdtemp(path.join(tmpdir(), 'nj-swift-'));
  const port = await freePortBase();
  const onExit = () => killPids(dir);
  process.once('exit', onExit);
  const endpoint = `http://127.0.0.1:${port}`;
  const started = await new Promise<string | null>((resolve) => {
    execFile('bash', [SWIFT_SCRIPT, 'start', dir, String(port)], { timeout: 120_000 }, (err, _stdout, stderr) =>
      resolve(err ? `${err.message}\n${stderr}` : null),
    );
  });
  // The script gives Swift 20 s; on a loaded 2-core machine (the whole suite running) its
  // Python servers can take longer. They keep starting after the script gives up, so
  // wait for them a while longer before failing.
  if (started !== null) {
    const deadline = performance.now() + 90_000;
    let up = false;
    while (!up && performance.now() < deadline) {
      up = await fetch(`${endpoint}/healthcheck`).then((r) => r.ok, () => false);
      if (!up) await new Promise((r) => setTimeout(r, 500));
    }
    if (!up) {
      killPids(dir);
      throw new Error(`swift-saio.sh start failed: ${started}`);
    }
  }
  const client = makeClient(endpoint, 'test:tester', 'testing');
  return {
    kind: 'swift',
    endpoint,
    accessKey: 'test:tester',
    secretKey: 'testing',
    region: 'us-east-1',
    client,
    createBucket: async (name) => {
      // Right after start the account and container servers may still be warming up (on a
      // 2-core machine running the whole suite, for longer than 20 s: SlowDown until then).
      for (let attempt = 1; ; attempt++) {
        try {
          await client.send(new CreateBucketCommand({ Bucket: name }));
          return;
        } catch (err) {
          const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
          if (status !== undefined && status < 500) throw err;
          if (attempt >= 120) throw new Error(`${(err as Error).message} (after ${attempt} tries)\n${swiftLogTails(dir)}`, { cause: err });
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    },
    stop: async () => {
      client.destroy();
      await new Promise<void>((resolve) => execFile('bash', [SWIFT_SCRIPT, 'stop', dir], () => resolve()));
      process.removeListener('exit', onExit);
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/**
 * The child that runs s3rver. Its ListObjectsV2 with MaxKeys hashes continuation
 * tokens with an algorithm OpenSSL 3 only offers through the legacy provider, hence a
 * child process started with `--openssl-legacy-provider` instead of an in-process server.
 */
const S3RVER_CHILD = `
const S3rver = require('s3rver');
const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: process.argv[1] });
server.run().then((addr) => process.stdout.write(JSON.stringify({ port: addr.port }) + '\\n'));
process.stdin.on('end', () => server.close(() => process.exit(0)));
process.stdin.resume();
`;

/** Starts s3rver in a child process on an ephemeral port; credentials S3RVER / S3RVER. */
export async function startS3rver(): Promise<S3TestServer> {
  const dir = await fsp.mkdtemp(path.join(tmpdir(), 'nj-s3rver-'));
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', '-e', S3RVER_CHILD, dir], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const onExit = () => child.kill();
  process.once('exit', onExit);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n')[0];
      if (out.includes('\n')) resolve((JSON.parse(line!) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code}`)));
  });
  const endpoint = `http://127.0.0.1:${port}`;
  const client = makeClient(endpoint, 'S3RVER', 'S3RVER');
  return {
    kind: 's3rver',
    endpoint,
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    region: 'us-east-1',
    client,
    createBucket: async (name) => {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    stop: async () => {
      client.destroy();
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
      process.removeListener('exit', onExit);
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
    },
  };
}

/** A fresh bucket name: lower case, 3–63 characters. */
export function bucketName(tag: string): string {
  return `nj-${tag}-${randomBytes(4).toString('hex')}`;
}

/**
 * A TargetConfig for `server` as node.cfg would give it, with the keys written to
 * files in `keyDir` (mode 0600). `endpoint` overrides the server's (e.g. a proxy).
 */
export async function s3Target(
  server: S3TestServer,
  opts: { alias: string; bucket: string; prefix?: string; endpoint?: string; keyDir: string; secretKey?: string },
): Promise<TargetConfig> {
  const accessKeyFile = path.join(opts.keyDir, `${opts.alias}.access`);
  const secretKeyFile = path.join(opts.keyDir, `${opts.alias}.secret`);
  await fsp.writeFile(accessKeyFile, server.accessKey + '\n', { mode: 0o600 });
  await fsp.writeFile(secretKeyFile, (opts.secretKey ?? server.secretKey) + '\n', { mode: 0o600 });
  const location = opts.prefix ? `${opts.bucket}/${opts.prefix}` : opts.bucket;
  return {
    alias: opts.alias,
    kind: 's3',
    url: `s3://${location}`,
    location,
    passphraseFile: path.join(opts.keyDir, 'passphrase'),
    bandwidth: null,
    budget: null,
    tokenFile: null,
    fingerprint: null,
    endpoint: opts.endpoint ?? server.endpoint,
    region: server.region,
    pathStyle: true,
    accessKeyFile,
    secretKeyFile,
    storageClass: null,
  };
}

// ---------------------------------------------------------------------------------
// The suite both server test files run.

/** Retry settings for tests: many quick attempts, so injected faults never win. */
const TEST_RETRY = { clock: systemClock, maxAttempts: 12, baseDelayMs: 2, maxDelayMs: 40 } as const;

function isTransientStoreError(e: unknown): e is StoreError {
  return e instanceof StoreError && !e.permanent;
}

/**
 * Runs the S3 store tests against one server kind: the store contract directly and
 * through a fault proxy with retries, and the S3-specific behaviour. `skip` (a reason)
 * skips everything, e.g. when Swift is not installed.
 */
export function runS3StoreSuite(kind: 'swift' | 's3rver', skip: string | null): void {
  describe(`S3 store on ${kind}`, { skip: skip ?? false }, () => {
    let server: S3TestServer;
    let keyDir: string;
    let bucket: string;
    const proxies: FaultProxy[] = [];
    const stores: Store[] = [];

    const open = async (
      o: { alias?: string; prefix?: string; endpoint?: string; secretKey?: string; bucket?: string } = {},
      extra: Partial<Parameters<typeof openS3Store>[1]> = {},
    ): Promise<S3Store> => {
      const target = await s3Target(server, {
        alias: o.alias ?? 'offsite',
        bucket: o.bucket ?? bucket,
        prefix: o.prefix ?? `t-${randomBytes(3).toString('hex')}`,
        keyDir,
        ...(o.endpoint ? { endpoint: o.endpoint } : {}),
        ...(o.secretKey ? { secretKey: o.secretKey } : {}),
      });
      const store = await openS3Store(target, { clock: systemClock, requestTimeoutMs: 10_000, ...extra });
      stores.push(store);
      return store;
    };
    const proxy = async (): Promise<FaultProxy> => {
      const p = await startFaultProxy(server.endpoint);
      proxies.push(p);
      return p;
    };

    before(async () => {
      server = kind === 'swift' ? await startSwift() : await startS3rver();
      keyDir = await fsp.mkdtemp(path.join(tmpdir(), 'nj-s3keys-'));
      bucket = bucketName(kind);
      await server.createBucket(bucket);
    });
    after(async () => {
      for (const s of stores) await s.close().catch(() => {});
      for (const p of proxies) await p.close();
      await server?.stop();
      if (keyDir) await fsp.rm(keyDir, { recursive: true, force: true });
    });

    // Small pages, so the contract's 300-object listing walks continuation tokens.
    runStoreContract(`s3 on ${kind}`, async () => ({
      store: await open({ prefix: 'direct/repo' }, { listPageSize: 70 }),
      cleanup: async () => {},
    }));

    let faulty: FaultProxy;
    runStoreContract(`s3 on ${kind} through a fault proxy (503, SlowDown, resets, cut GETs) with retries`, async () => {
      faulty = await proxy();
      faulty.setPlan({ status503: 0.08, slowDown: 0.06, reset: 0.06, truncateGet: 0.4, seed: 7 });
      // One listing page: withRetry restarts a failed listing from its first page.
      const raw = await open({ prefix: 'faulty', endpoint: faulty.url });
      return { store: withRetry(raw, TEST_RETRY), cleanup: async () => {} };
    });

    it('the fault proxy really injected every kind of fault during the contract run', () => {
      const c = faulty.counts;
      assert.ok(c.status503 > 0 && c.slowDown > 0 && c.reset > 0, JSON.stringify(c));
      assert.ok(c.truncateCut + c.truncateShort > 0, JSON.stringify(c));
      assert.ok(c.forwarded > 100, JSON.stringify(c));
    });

    if (kind === 's3rver') {
      // s3rver ignores If-None-Match; a proxy that enforces it stands in for AWS, MinIO,
      // R2 and the other servers that honour it, so the conditional path runs too.
      let enforcing: FaultProxy;
      runStoreContract('s3 on s3rver behind a proxy enforcing If-None-Match (as AWS and MinIO do)', async () => {
        enforcing = await proxy();
        enforcing.setPlan({ enforceIfNoneMatch: true });
        return { store: await open({ prefix: 'conditional', endpoint: enforcing.url }), cleanup: async () => {} };
      });

      it('uses If-None-Match: * where the server enforces it, for PUTs and multipart uploads, without HEAD first', async () => {
        const MiB = 1024 * 1024;
        const store = await open({ endpoint: enforcing.url }, { multipartThresholdBytes: 6 * MiB, partSizeBytes: 5 * MiB });
        assert.equal(await store.writeOnceStrategy(), 'if-none-match');
        const before = enforcing.requests.length;
        await store.write('data/c/small', Buffer.from('one'));
        await assert.rejects(store.write('data/c/small', Buffer.from('two')), ObjectExistsError);
        const big = randomBytes(7 * MiB);
        await store.write('data/c/big', big);
        await assert.rejects(store.write('data/c/big', randomBytes(7 * MiB)), ObjectExistsError);
        assert.deepEqual(await store.read('data/c/big'), big);
        assert.equal((await store.read('data/c/small')).toString(), 'one');
        const log = enforcing.requests.slice(before);
        assert.ok(!log.some((r) => r.startsWith('HEAD ')), log.join('\n'));
        // The refused multipart upload was aborted, not left behind.
        assert.ok(log.some((r) => r.startsWith('DELETE ') && r.includes('uploadId=')), log.join('\n'));
        assert.ok(enforcing.counts.preconditionFailed >= 2 + 7, JSON.stringify(enforcing.counts));
      });
    }

    it('keeps every object under the prefix and lists only valid names below it', async () => {
      const store = await open({ prefix: 'nested/pre' });
      await store.write('data/ab/x', Buffer.from('x'));
      await server.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'nested/pre/.stray', Body: 'junk' }));
      await server.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'nested/prefix-sibling', Body: 'junk' }));
      const keys = (await server.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'nested/' }))).Contents?.map((o) => o.Key);
      assert.ok(keys?.includes('nested/pre/data/ab/x'), String(keys));
      const names: string[] = [];
      for await (const o of store.list('')) names.push(o.name);
      assert.deepEqual(names, ['data/ab/x']);
      assert.match(store.location, new RegExp(`^s3://${bucket}/nested/pre at ${server.endpoint.replace(/[.]/g, '\\.')}$`));
      assert.ok(!store.location.includes(server.secretKey));
    });

    it(`enforces write-once by ${kind === 'swift' ? 'HEAD-then-PUT (If-None-Match answers 501)' : 'HEAD-then-PUT (If-None-Match is ignored)'}`, async () => {
      const store = await open();
      assert.equal(await store.writeOnceStrategy(), 'head-then-put');
      // The probe key is gone again.
      const keys = (await server.client.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? [];
      assert.ok(!keys.some((k) => k.Key?.includes('.nj-probe-')), keys.map((k) => k.Key).join(' '));
    });

    it('writes large objects by multipart upload; they read back byte-exact and stay write-once', async () => {
      const MiB = 1024 * 1024;
      const p = await proxy();
      const store = await open({ endpoint: p.url }, { multipartThresholdBytes: 6 * MiB, partSizeBytes: 5 * MiB });
      const data = randomBytes(11 * MiB + 123);
      await store.write('data/mp/big', data);
      assert.deepEqual(await store.stat('data/mp/big'), { name: 'data/mp/big', size: data.length });
      assert.deepEqual(await store.read('data/mp/big'), data);
      assert.deepEqual(await store.read('data/mp/big', { offset: 5 * MiB - 10, length: 20 }), data.subarray(5 * MiB - 10, 5 * MiB + 10));
      await assert.rejects(store.write('data/mp/big', randomBytes(7 * MiB)), ObjectExistsError);
      assert.deepEqual(await store.read('data/mp/big'), data);
      // Three parts of the first write went up (the second write stopped at its HEAD).
      assert.equal(p.requests.filter((r) => r.startsWith('PUT ') && /[?&]partNumber=/.test(r)).length, 3);
    });

    it('takes credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY when no key files are set', async () => {
      const target = { ...(await s3Target(server, { alias: 'envkeys', bucket, prefix: 'env', keyDir })), accessKeyFile: null, secretKeyFile: null };
      const env = { AWS_ACCESS_KEY_ID: server.accessKey, AWS_SECRET_ACCESS_KEY: server.secretKey };
      const store = await openS3Store(target, { clock: systemClock, env });
      stores.push(store);
      await store.write('config', Buffer.from('c'));
      assert.equal((await store.read('config')).toString(), 'c');
      await assert.rejects(openS3Store(target, { clock: systemClock, env: {} }), (e: unknown) => {
        assert.ok(e instanceof StoreError && e.permanent && e.code === 'NJ_STORE_CONFIG', String(e));
        assert.match(e.message, /^target "envkeys": no S3 credentials/);
        return true;
      });
    });

    it('a missing bucket fails fast with a permanent error naming the alias', async () => {
      const store = withRetry(await open({ alias: 'nobucket', bucket: bucketName('missing') }), { ...TEST_RETRY, onRetry: () => assert.fail('retried') });
      for (const op of [() => store.stat('config'), () => store.read('config'), () => store.write('config', Buffer.from('x'))]) {
        await assert.rejects(op(), (e: unknown) => {
          assert.ok(e instanceof StoreError, String(e));
          assert.equal(e.permanent, true);
          assert.equal(e.code, 'NJ_STORE_NO_BUCKET');
          assert.match(e.message, /^target "nobucket": bucket of s3:\/\/nj-missing-/);
          return true;
        });
      }
    });

    it('wrong credentials fail fast with a permanent error naming the alias', { skip: kind === 's3rver' ? 's3rver does not check signatures' : false }, async () => {
      const store = withRetry(await open({ alias: 'badkey', secretKey: 'not-the-secret' }), { ...TEST_RETRY, onRetry: () => assert.fail('retried') });
      await assert.rejects(store.stat('config'), (e: unknown) => {
        assert.ok(e instanceof StoreError, String(e));
        assert.equal(e.permanent, true);
        assert.equal(e.code, 'NJ_STORE_AUTH');
        assert.match(e.message, /^target "badkey": .*(SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId)/);
        assert.ok(!e.message.includes('not-the-secret'));
        return true;
      });
    });

    it('a GET body cut short is a transient error, never returned as data', async () => {
      const p = await proxy();
      const store = await open({ endpoint: p.url });
      const data = randomBytes(50_000);
      await store.write('data/tr/x', data);
      p.setPlan({ truncateGet: 1 });
      for (const range of [undefined, { offset: 100, length: 30_000 }, { offset: 100, length: 30_000 }]) {
        await assert.rejects(store.read('data/tr/x', range), (e: unknown) => {
          assert.ok(isTransientStoreError(e), String(e));
          assert.match(e.message, /^target "offsite": /);
          return true;
        });
      }
      assert.equal(p.counts.truncateCut, 2);
      assert.equal(p.counts.truncateShort, 1);
      // Through the retry decorator the read succeeds once a whole body arrives.
      p.setPlan({ truncateGet: 0.6, seed: 3 });
      const retrying = withRetry(store, TEST_RETRY);
      for (let i = 0; i < 5; i++) {
        assert.deepEqual(await retrying.read('data/tr/x'), data);
        assert.deepEqual(await retrying.read('data/tr/x', { offset: 7, length: 40_000 }), data.subarray(7, 40_007));
      }
      assert.ok(p.counts.truncateCut + p.counts.truncateShort > 3);
    });

    it('a request that hangs is cut after requestTimeoutMs and retried', async () => {
      const p = await proxy();
      const store = await open({ endpoint: p.url }, { requestTimeoutMs: 1_000 });
      await store.write('data/hg/x', Buffer.from('hang'));
      p.setPlan({ hang: 1 });
      const seen: string[] = [];
      const retrying = withRetry(store, {
        ...TEST_RETRY,
        onRetry: (err) => {
          seen.push((err as StoreError).code);
          p.setPlan({});
        },
      });
      assert.equal((await retrying.read('data/hg/x')).toString(), 'hang');
      assert.ok(seen.length >= 1 && seen.every((c) => c === 'NJ_STORE_TIMEOUT'), seen.join());
      assert.equal(p.counts.hang, 1);
    });

    it('an upload that takes longer than requestTimeoutMs is not cut while its bytes keep moving', { skip: kind === 'swift' ? 'the HTTP layer is the same; tested on s3rver' : false }, async () => {
      const MiB = 1024 * 1024;
      const p = await proxy();
      const store = await open({ endpoint: p.url }, { requestTimeoutMs: 3_000, multipartThresholdBytes: 64 * MiB });
      await store.stat('config'); // the first-use check, before the line gets slow
      p.setPlan({ uploadBytesPerSec: 4 * MiB });
      const data = randomBytes(16 * MiB);
      await store.write('data/slow/x', data); // ~4 s on the wire, one PUT
      p.setPlan({});
      assert.deepEqual(await store.read('data/slow/x'), data);
    });

    it('a missing object is NotFound, not a fault, through the proxy too', async () => {
      const p = await proxy();
      const store = withRetry(await open({ endpoint: p.url }), TEST_RETRY);
      p.setPlan({ status503: 0.3, seed: 5 });
      await assert.rejects(store.read('data/none/x'), NotFoundError);
      assert.equal(await store.stat('data/none/x'), null);
      await store.delete('data/none/x');
    });
  });
}
