import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { describe, it } from 'node:test';
import type { TargetConfig } from '../src/node/config/types.js';
import { systemClock } from '../src/node/clock.js';
import { withRetry } from '../src/store/retrying-store.js';
import { classifyS3Error, parseRetryAfter } from '../src/store/s3-errors.js';
import { openS3Store, parseS3Location } from '../src/store/s3-store.js';
import { StoreError } from '../src/store/store.js';

/** An error shaped like the AWS SDK's service exceptions. */
function serviceError(name: string, status: number, headers: Record<string, string> = {}): Error {
  const e = new Error(`${name} message`);
  e.name = name;
  Object.assign(e, { $metadata: { httpStatusCode: status }, $fault: status >= 500 ? 'server' : 'client' });
  Object.defineProperty(e, '$response', { value: { statusCode: status, headers }, enumerable: false });
  return e;
}
function netError(code: string): Error {
  return Object.assign(new Error(`${code} happened`), { code });
}
const ctx = { alias: 'offsite', location: 's3://b/p at https://s3.example', what: 'read data/ab/x', nowMs: 1_700_000_000_000 };

function target(over: Partial<TargetConfig> = {}): TargetConfig {
  return {
    alias: 'offsite',
    kind: 's3',
    url: 's3://bucket/prefix',
    location: 'bucket/prefix',
    passphraseFile: '/nonexistent/passphrase',
    bandwidth: null,
    budget: null,
    tokenFile: null,
    fingerprint: null,
    endpoint: 'https://s3.example.com',
    region: 'eu-west-1',
    pathStyle: false,
    accessKeyFile: null,
    secretKeyFile: null,
    storageClass: null,
    ...over,
  };
}

describe('S3 error classification', () => {
  const permanent: Array<[string, unknown, string]> = [
    ['403 AccessDenied', serviceError('AccessDenied', 403), 'NJ_STORE_AUTH'],
    ['InvalidAccessKeyId', serviceError('InvalidAccessKeyId', 403), 'NJ_STORE_AUTH'],
    ['SignatureDoesNotMatch', serviceError('SignatureDoesNotMatch', 403), 'NJ_STORE_AUTH'],
    ['a bare 403 (HEAD, no body)', serviceError('Forbidden', 403), 'NJ_STORE_AUTH'],
    ['RequestTimeTooSkewed', serviceError('RequestTimeTooSkewed', 403), 'NJ_STORE_AUTH'],
    ['NoSuchBucket', serviceError('NoSuchBucket', 404), 'NJ_STORE_NO_BUCKET'],
    ['unknown host', netError('ENOTFOUND'), 'NJ_STORE_UNKNOWN_HOST'],
    ['bad certificate', netError('DEPTH_ZERO_SELF_SIGNED_CERT'), 'NJ_STORE_TLS'],
    ['400 InvalidArgument', serviceError('InvalidArgument', 400), 'NJ_STORE_REJECTED'],
  ];
  for (const [label, err, code] of permanent) {
    it(`${label} is permanent (${code}) and names the alias`, () => {
      const e = classifyS3Error(err, ctx);
      assert.equal(e.permanent, true);
      assert.equal(e.code, code);
      assert.match(e.message, /^target "offsite": /);
      assert.equal(e.cause, err);
    });
  }

  const transient: Array<[string, unknown, string]> = [
    ['500 InternalError', serviceError('InternalError', 500), 'NJ_STORE_SERVER'],
    ['502 from a gateway', serviceError('Unknown', 502), 'NJ_STORE_SERVER'],
    ['503', serviceError('ServiceUnavailable', 503), 'NJ_STORE_THROTTLED'],
    ['503 SlowDown', serviceError('SlowDown', 503), 'NJ_STORE_THROTTLED'],
    ['429', serviceError('TooManyRequests', 429), 'NJ_STORE_THROTTLED'],
    ['400 RequestTimeout', serviceError('RequestTimeout', 400), 'NJ_STORE_SERVER'],
    ['400 BadDigest (body damaged in transit)', serviceError('BadDigest', 400), 'NJ_STORE_SERVER'],
    ['409 ConditionalRequestConflict', serviceError('ConditionalRequestConflict', 409), 'NJ_STORE_SERVER'],
    ['ECONNRESET', netError('ECONNRESET'), 'NJ_STORE_NETWORK'],
    ['socket closed mid-body', netError('UND_ERR_SOCKET'), 'NJ_STORE_NETWORK'],
    ['headers timeout', netError('UND_ERR_HEADERS_TIMEOUT'), 'NJ_STORE_TIMEOUT'],
    ['body timeout', netError('UND_ERR_BODY_TIMEOUT'), 'NJ_STORE_TIMEOUT'],
    ['a reset wrapped as cause', Object.assign(new Error('fetch failed'), { cause: netError('ECONNRESET') }), 'NJ_STORE_NETWORK'],
    ['a 200 whose XML did not parse', serviceError('SyntaxError', 200), 'NJ_STORE_NETWORK'],
  ];
  for (const [label, err, code] of transient) {
    it(`${label} is transient (${code})`, () => {
      const e = classifyS3Error(err, ctx);
      assert.equal(e.permanent, false, e.message);
      assert.equal(e.code, code);
    });
  }

  it('carries Retry-After (seconds or HTTP date) as retryAfterMs, capped at 5 minutes', () => {
    const e = classifyS3Error(serviceError('SlowDown', 503, { 'retry-after': '3' }), ctx) as StoreError & { retryAfterMs?: number };
    assert.equal(e.retryAfterMs, 3000);
    assert.equal(parseRetryAfter(new Date(ctx.nowMs + 10_000).toUTCString(), ctx.nowMs), 10_000);
    assert.equal(parseRetryAfter('99999', ctx.nowMs), 300_000);
    assert.equal(parseRetryAfter('soon', ctx.nowMs), undefined);
  });
});

describe('openS3Store configuration', () => {
  it('splits bucket/prefix', () => {
    assert.deepEqual(parseS3Location('bucket/a/b/'), { bucket: 'bucket', keyPrefix: 'a/b/' });
    assert.deepEqual(parseS3Location('s3://bucket'), { bucket: 'bucket', keyPrefix: '' });
  });

  it('location names bucket, prefix and endpoint but never credentials', async () => {
    const env = { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI' };
    const s = await openS3Store(target({ endpoint: 'https://user:pw@minio.lan:9000' }), { clock: systemClock, env });
    assert.equal(s.location, 's3://bucket/prefix at https://minio.lan:9000');
    await s.close();
    const aws = await openS3Store(target({ endpoint: null }), { clock: systemClock, env });
    assert.equal(aws.location, 's3://bucket/prefix at AWS S3 eu-west-1');
    await aws.close();
  });

  const bad: Array<[string, Partial<TargetConfig>, Record<string, string>, RegExp]> = [
    ['no credentials anywhere', {}, {}, /no S3 credentials/],
    ['only one key file', { accessKeyFile: '/nonexistent/a' }, {}, /must be set together/],
    ['an unreadable key file', { accessKeyFile: '/nonexistent/a', secretKeyFile: '/nonexistent/b' }, {}, /cannot read access_key_file \/nonexistent\/a/],
    ['a bad bucket name', { location: 'a' }, { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' }, /not a bucket name/],
    ['a bad prefix', { location: 'bucket/.hidden' }, { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' }, /prefix/],
    ['a non-http endpoint', { endpoint: 'ftp://x' }, { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' }, /endpoint must be http/],
  ];
  for (const [label, over, env, re] of bad) {
    it(`refuses ${label} with a permanent NJ_STORE_CONFIG error naming the alias`, async () => {
      await assert.rejects(openS3Store(target(over), { clock: systemClock, env }), (e: unknown) => {
        assert.ok(e instanceof StoreError && e.permanent && e.code === 'NJ_STORE_CONFIG', String(e));
        assert.match(e.message, /^target "offsite": /);
        assert.match(e.message, re);
        return true;
      });
    });
  }

  it('an unknown endpoint host fails fast with a permanent error', async (t) => {
    const host = 'nightjar-test.invalid';
    const resolved = await lookup(host).then(
      () => 'resolved',
      (e: NodeJS.ErrnoException) => e.code ?? 'error',
    );
    if (resolved !== 'ENOTFOUND') return t.skip(`this machine's resolver answers ${resolved} for ${host}, not ENOTFOUND`);
    const env = { AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'y' };
    const raw = await openS3Store(target({ endpoint: `http://${host}:9000`, pathStyle: true }), { clock: systemClock, env });
    const store = withRetry(raw, { clock: systemClock, onRetry: () => assert.fail('retried') });
    await assert.rejects(store.stat('config'), (e: unknown) => {
      assert.ok(e instanceof StoreError && e.permanent, String(e));
      assert.equal(e.code, 'NJ_STORE_UNKNOWN_HOST');
      assert.match(e.message, /^target "offsite": cannot resolve/);
      return true;
    });
    await raw.close();
  });
});
