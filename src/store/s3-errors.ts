import { StoreError } from './store.js';

/**
 * Turning what the AWS SDK (and undici beneath it) throws into StoreErrors whose
 * `permanent` flag the retry decorator can trust. The rule: a fault of the request or
 * the account (credentials, permissions, missing bucket, unknown host, bad TLS, a 4xx
 * the server means) is permanent; a fault of the moment (5xx, throttling, resets,
 * timeouts, a body cut short, an unparsable 2xx body) is transient.
 */

/** S3 error codes that mean "try again later" whatever the HTTP status says. */
const TRANSIENT_S3_CODES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout', // 400: the server gave up waiting for our body
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequests',
  'OperationAborted',
  'ConditionalRequestConflict', // 409: a concurrent conditional write; the retry sees 412
  'BadDigest', // body damaged in transit (Content-MD5 mismatch)
  'IncompleteBody',
  'XAmzContentSHA256Mismatch',
]);

/** S3 error codes of bad or insufficient credentials. */
const AUTH_S3_CODES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
  'InvalidSecurity',
  'RequestTimeTooSkewed',
]);

/** Network error codes after which retrying cannot help. */
const PERMANENT_NET_CODES = new Set([
  'ENOTFOUND',
  'ERR_INVALID_URL',
  'CERT_HAS_EXPIRED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

const TIMEOUT_NET_CODES = new Set([
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CONNECT_TIMEOUT',
  'ETIMEDOUT',
]);

/** What a failed SDK call looked like, pulled out of the error. */
export interface S3Failure {
  /** HTTP status, when a response arrived. */
  readonly status: number | undefined;
  /** S3 error code (`NoSuchKey`, `SlowDown`, …) or the transport's code (`ECONNRESET`). */
  readonly code: string;
  readonly message: string;
  /** Value of a Retry-After response header, if any. */
  readonly retryAfter: string | undefined;
}

/** Reads status, code and message from anything the SDK or undici throws. */
export function describeS3Failure(err: unknown): S3Failure {
  const e = err as {
    name?: string;
    Code?: string;
    code?: string;
    message?: string;
    cause?: unknown;
    $metadata?: { httpStatusCode?: number };
    $response?: { headers?: Record<string, string> };
  };
  const status = e?.$metadata?.httpStatusCode;
  let code = e?.Code ?? (status !== undefined ? e?.name : undefined);
  if (!code || code === 'Error') code = networkCode(err) ?? e?.name ?? 'Unknown';
  const headers = e?.$response?.headers ?? {};
  let message = typeof e?.message === 'string' ? e.message.split('\n')[0]! : String(err);
  if (message === 'UnknownError' || message === '') message = status !== undefined ? `HTTP ${status}` : code;
  return { status, code, message, retryAfter: headers['retry-after'] };
}

/** The first errno/undici code along the `cause` chain. */
function networkCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Where a failure happened, for the message. */
export interface S3FailureContext {
  /** The target's alias from node.cfg, named in every permanent error. */
  readonly alias: string;
  /** `s3://bucket/prefix at endpoint` (no secrets). */
  readonly location: string;
  /** What was being done: `write data/ab/…`. */
  readonly what: string;
  /** Milliseconds since the epoch now, to turn a Retry-After date into a wait. */
  readonly nowMs: number;
}

/**
 * Classifies a failed S3 call into a StoreError (never NotFound/Exists: callers map
 * those first, because their meaning depends on the operation). Codes:
 * NJ_STORE_AUTH, NJ_STORE_NO_BUCKET, NJ_STORE_UNKNOWN_HOST, NJ_STORE_TLS,
 * NJ_STORE_REJECTED (other 4xx) are permanent; NJ_STORE_THROTTLED (429, SlowDown, 503),
 * NJ_STORE_SERVER (5xx), NJ_STORE_TIMEOUT, NJ_STORE_NETWORK are transient. A transient
 * error carries `retryAfterMs` when the server sent Retry-After (capped at 5 minutes).
 */
export function classifyS3Error(err: unknown, ctx: S3FailureContext): StoreError {
  if (err instanceof StoreError) return err;
  const f = describeS3Failure(err);
  const detail = `${f.code}${f.status !== undefined ? ` (HTTP ${f.status})` : ''}: ${f.message}`;
  const permanent = (code: string, text: string) =>
    new StoreError(`target "${ctx.alias}": ${text}`, { code, permanent: true, cause: err });
  const transient = (code: string) => {
    const e = new StoreError(`target "${ctx.alias}": ${ctx.what} on ${ctx.location} failed, will retry: ${detail}`, {
      code,
      permanent: false,
      cause: err,
    });
    const retryAfterMs = parseRetryAfter(f.retryAfter, ctx.nowMs);
    if (retryAfterMs !== undefined) Object.assign(e, { retryAfterMs });
    return e;
  };

  if (f.code === 'NoSuchBucket') {
    return permanent('NJ_STORE_NO_BUCKET', `bucket of ${ctx.location} does not exist (${detail}); create it first (see docs/S3.md)`);
  }
  if (AUTH_S3_CODES.has(f.code) || f.status === 401 || f.status === 403) {
    const hint =
      f.code === 'RequestTimeTooSkewed'
        ? 'this machine\'s clock is too far from the server\'s; fix the clock'
        : 'check access_key_file/secret_key_file (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) and the bucket policy';
    return permanent('NJ_STORE_AUTH', `${ctx.location} refused ${ctx.what}: ${detail}; ${hint}`);
  }
  if (TRANSIENT_S3_CODES.has(f.code) || f.status === 429 || f.status === 408) {
    return transient(f.status === 503 || f.status === 429 || f.code === 'SlowDown' ? 'NJ_STORE_THROTTLED' : 'NJ_STORE_SERVER');
  }
  if (f.status !== undefined && f.status >= 500) return transient(f.status === 503 ? 'NJ_STORE_THROTTLED' : 'NJ_STORE_SERVER');
  if (f.status !== undefined && f.status >= 400) {
    return permanent('NJ_STORE_REJECTED', `${ctx.location} rejected ${ctx.what}: ${detail}`);
  }
  if (f.code === 'ENOTFOUND' || f.code === 'ERR_INVALID_URL') {
    return permanent('NJ_STORE_UNKNOWN_HOST', `cannot resolve the endpoint of ${ctx.location} (${detail}); check endpoint in node.cfg`);
  }
  if (PERMANENT_NET_CODES.has(f.code)) {
    return permanent('NJ_STORE_TLS', `TLS with ${ctx.location} failed: ${detail}`);
  }
  if (TIMEOUT_NET_CODES.has(f.code) || f.code === 'TimeoutError') return transient('NJ_STORE_TIMEOUT');
  // Resets, refused connections, sockets closed mid-body, a 2xx body that did not parse.
  return transient('NJ_STORE_NETWORK');
}

/** Retry-After as seconds or an HTTP date, in ms from now; undefined when absent or odd. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (!value) return undefined;
  const cap = 5 * 60_000;
  if (/^\d+$/.test(value.trim())) return Math.min(cap, Number(value.trim()) * 1000);
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.min(cap, Math.max(0, at - nowMs));
}
