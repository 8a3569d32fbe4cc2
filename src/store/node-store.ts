/**
 * The `node:` target: a peer Nightjar node's storage service (docs/STORAGE-PROTOCOL.md),
 * spoken to with undici. One keep-alive Pool per target. TLS certificates are not
 * validated through a CA but pinned: the connection is refused unless the SHA-256 of the
 * peer's certificate equals `ALIAS.fingerprint` (without a fingerprint, an https URL is
 * validated the ordinary way, for a peer behind a proxy with a real certificate).
 *
 * Errors are StoreErrors classified for the retry decorator (withRetry, stacked by the
 * caller): 401/403/413/507, a wrong fingerprint and protocol errors are permanent and name
 * the target's alias; connection failures, resets, timeouts, 5xx and 429 are transient
 * (429/503 carry `retryAfterMs` from Retry-After).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { buildConnector, Pool, type Dispatcher } from 'undici';
import type { Clock } from '../node/clock.js';
import type { TargetConfig } from '../node/config/types.js';
import { tlsTrust } from '../node/extra-ca.js';
import {
  checkRange,
  InvalidNameError,
  InvalidRangeError,
  NotFoundError,
  ObjectExistsError,
  StoreError,
  validateObjectName,
  validatePrefix,
  type ByteRange,
  type ObjectInfo,
  type Store,
  type WriteOptions,
  type WritePacer,
} from './store.js';
import { pacedBody } from './pacing.js';

/** A StoreError that may say how long to wait before retrying (from Retry-After). */
export class NodeStoreError extends StoreError {
  /** HTTP status, when the peer answered. */
  readonly status: number | null;
  readonly retryAfterMs?: number;
  constructor(message: string, opts: { code: string; permanent: boolean; status?: number | null; retryAfterMs?: number; cause?: unknown }) {
    super(message, opts);
    this.name = 'NodeStoreError';
    this.status = opts.status ?? null;
    if (opts.retryAfterMs !== undefined) this.retryAfterMs = opts.retryAfterMs;
  }
}

/** The peer presented a certificate other than the pinned one. Permanent. */
export class FingerprintMismatchError extends StoreError {
  constructor(
    readonly alias: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `target "${alias}": the peer's certificate fingerprint is ${colons(actual)}, but ${alias}.fingerprint pins ${colons(expected)}; refusing to talk to it (if the peer really made a new certificate, update ${alias}.fingerprint)`,
      { code: 'NJ_STORE_FINGERPRINT', permanent: true },
    );
    this.name = 'FingerprintMismatchError';
  }
}

/**
 * A write refused because the name exists. `sameContent` is true when the existing
 * object has the SHA-256 of the data we tried to write: a retried upload whose first
 * attempt landed, which a caller that knows the name is content-addressed may treat as
 * success (see withRetry).
 */
export class NodeObjectExistsError extends ObjectExistsError {
  constructor(
    location: string,
    name: string,
    readonly sameContent: boolean,
  ) {
    super(location, name);
  }
}

/** What the peer says about this client's space (GET /v1/info). */
export interface NodeStoreInfo {
  readonly client: string;
  readonly appendOnly: boolean;
  readonly canDelete: boolean;
  readonly quota: number | null;
  readonly usedBytes: number;
  readonly objects: number;
  /** What may still be stored: the smaller of quota left and disk space beyond reserved_space. */
  readonly freeBytes: number;
  readonly maxObjectSize: number;
}

export interface NodeStoreOptions {
  readonly clock: Clock;
  /** Target alias for messages (default: target.alias). */
  readonly alias?: string;
  /** Connect timeout (default 10 s). */
  readonly connectTimeoutMs?: number;
  /** Waiting for response headers, and for each piece of a body (default 120 s: a 256 MiB PUT is digested before the answer). */
  readonly responseTimeoutMs?: number;
  /** Parallel connections (default 4). */
  readonly connections?: number;
  /** Objects per list page (default 1000). */
  readonly pageSize?: number;
}

/**
 * Opens the `node:` target `target` (kind 'node'): reads the token from `tokenFile` and
 * prepares the connection pool (nothing is sent until the first call). Throws a
 * permanent StoreError naming the alias when the token file cannot be read or the URL is
 * unusable. The result is not retried: wrap it with withRetry. `info` and
 * `reportBackupCompleted` are extra calls of this target.
 */
export async function openNodeStore(target: TargetConfig, opts: NodeStoreOptions): Promise<NodeStore> {
  const alias = opts.alias ?? target.alias;
  if (target.kind !== 'node') throw new StoreError(`target "${alias}" is a ${target.kind}: target, not node:`, { code: 'NJ_STORE_CONFIG', permanent: true });
  if (!target.tokenFile) throw new StoreError(`target "${alias}" has no ${alias}.token_file`, { code: 'NJ_STORE_CONFIG', permanent: true });
  let token: string;
  try {
    token = (await readFile(target.tokenFile, 'utf8')).split(/\r?\n/).map((l) => l.trim()).find((l) => l !== '' && !l.startsWith('#')) ?? '';
  } catch (err) {
    throw new StoreError(`target "${alias}": cannot read ${alias}.token_file ${target.tokenFile}: ${(err as Error).message}`, {
      code: 'NJ_STORE_CONFIG',
      permanent: true,
      cause: err,
    });
  }
  if (!/^[A-Za-z0-9._~+/=-]{16,512}$/.test(token)) {
    throw new StoreError(`target "${alias}": ${target.tokenFile} does not hold a token (one line, as printed by nightjar add-client on the peer)`, {
      code: 'NJ_STORE_CONFIG',
      permanent: true,
    });
  }
  return new NodeStore(target.location, token, target.fingerprint, alias, opts);
}

/** A Store on a peer's storage service. All methods may be called concurrently. */
export class NodeStore implements Store {
  readonly location: string;
  readonly alias: string;
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly authorization: string;
  private readonly pageSize: number;

  constructor(url: string, token: string, fingerprint: string | null, alias: string, private readonly opts: NodeStoreOptions) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new StoreError(`target "${alias}": ${url} is not a URL`, { code: 'NJ_STORE_CONFIG', permanent: true });
    }
    this.alias = alias;
    this.location = `node:${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
    this.basePath = parsed.pathname.replace(/\/+$/, '');
    this.authorization = `Bearer ${token}`;
    this.pageSize = opts.pageSize ?? 1000;
    const pinned = fingerprint === null ? null : fingerprint.replace(/:/g, '').toLowerCase();
    const base = buildConnector({
      timeout: opts.connectTimeoutMs ?? 10_000,
      // With a pinned fingerprint the chain is not checked against CAs (the certificate is
      // self-signed); the fingerprint check below is the verification.
      rejectUnauthorized: pinned === null,
      // A resumed TLS session carries no peer certificate to check; always do a full
      // handshake (keep-alive makes new connections rare anyway).
      maxCachedSessions: 0,
      ...(pinned === null ? tlsTrust() : {}),
    });
    const connect: buildConnector.connector = (options, callback) => {
      base(options, (err, socket) => {
        if (err !== null) return callback(err, null);
        if (pinned !== null && parsed.protocol === 'https:') {
          const raw = (socket as TLSSocket).getPeerCertificate?.()?.raw;
          const actual = raw ? createHash('sha256').update(raw).digest('hex') : '';
          if (actual !== pinned) {
            socket.destroy();
            return callback(new FingerprintMismatchError(alias, pinned, actual), null);
          }
        }
        callback(null, socket);
      });
    };
    const timeout = opts.responseTimeoutMs ?? 120_000;
    this.pool = new Pool(parsed.origin, {
      connect,
      connections: opts.connections ?? 4,
      keepAliveTimeout: 10_000, // below the service's 30 s, so we never reuse a socket it is closing
      headersTimeout: timeout,
      bodyTimeout: timeout,
    });
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    let after: string | null = null;
    for (;;) {
      const query = [`limit=${this.pageSize}`];
      if (prefix !== '') query.push(`prefix=${prefix}`); // names need no escaping: [A-Za-z0-9._/-]
      if (after !== null) query.push(`after=${after}`);
      const page = (await this.json('GET', `/v1/objects?${query.join('&')}`)) as { objects: ObjectInfo[]; next: string | null };
      for (const o of page.objects) yield { name: o.name, size: o.size };
      if (page.next === null) return;
      after = page.next;
    }
  }

  async stat(name: string): Promise<ObjectInfo | null> {
    validateObjectName(name);
    const res = await this.request('HEAD', this.objectPath(name));
    if (res.statusCode !== 200 && res.statusCode !== 404) throw await this.errorFor(res, `stat ${name}`, name);
    await drain(res);
    if (res.statusCode === 404) return null;
    return { name, size: Number(res.headers['content-length']) };
  }

  async read(name: string, range?: ByteRange): Promise<Buffer> {
    validateObjectName(name);
    if (range) {
      checkRange(this.location, name, { offset: range.offset, length: range.length }, Number.MAX_SAFE_INTEGER);
      if (range.length === 0) {
        // HTTP cannot ask for zero bytes: check existence and bounds instead.
        const st = await this.stat(name);
        if (!st) throw new NotFoundError(this.location, name);
        checkRange(this.location, name, range, st.size);
        return Buffer.alloc(0);
      }
    }
    const headers: Record<string, string> = range ? { range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {};
    const res = await this.request('GET', this.objectPath(name), { headers });
    if (res.statusCode !== 200 && res.statusCode !== 206) {
      if (res.statusCode === 416 && range) {
        await drain(res);
        const size = Number(/\/(\d+)$/.exec(String(res.headers['content-range'] ?? ''))?.[1] ?? -1);
        throw new InvalidRangeError(this.location, name, range, size);
      }
      throw await this.errorFor(res, `read ${name}`, name);
    }
    let data: Buffer;
    try {
      data = Buffer.from(await res.body.arrayBuffer());
    } catch (err) {
      throw this.networkError(err, `read ${name}`);
    }
    const want = range ? range.length : Number(res.headers['content-length'] ?? data.length);
    if (data.length !== want || (range && res.statusCode !== 206)) {
      throw new NodeStoreError(`target "${this.alias}": read ${name} returned ${data.length} bytes, expected ${want}`, { code: 'NJ_STORE_IO', permanent: false });
    }
    return data;
  }

  async write(name: string, data: Buffer, opts?: WriteOptions): Promise<void> {
    validateObjectName(name);
    const digest = createHash('sha256').update(data).digest('hex');
    const res = await this.request('PUT', this.objectPath(name), {
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(data.length),
        'x-nightjar-sha256': digest,
      },
      body: uploadBody(data, opts?.pace),
    });
    if (res.statusCode === 201) {
      await drain(res);
      return;
    }
    if (res.statusCode === 409) {
      await drain(res);
      throw new NodeObjectExistsError(this.location, name, res.headers['x-nightjar-existing-sha256'] === digest);
    }
    throw await this.errorFor(res, `write ${name}`, name);
  }

  async delete(name: string): Promise<void> {
    validateObjectName(name);
    const res = await this.request('DELETE', this.objectPath(name));
    if (res.statusCode !== 204 && res.statusCode !== 404) throw await this.errorFor(res, `delete ${name}`, name);
    await drain(res);
  }

  /** This client's space on the peer: quota, usage, append-only. */
  async info(): Promise<NodeStoreInfo> {
    const j = (await this.json('GET', '/v1/info')) as Record<string, unknown>;
    return {
      client: String(j.client),
      appendOnly: j.append_only === true,
      canDelete: j.can_delete === true,
      quota: typeof j.quota === 'number' ? j.quota : null,
      usedBytes: Number(j.used_bytes),
      objects: Number(j.objects),
      freeBytes: Number(j.free_bytes),
      maxObjectSize: Number(j.max_object_size),
    };
  }

  /**
   * Tells the peer that a backup to it completed (the peer alerts its owner when this
   * stops happening for `[storage] stale_after`). Idempotent; safe to retry.
   */
  async reportBackupCompleted(report: { job?: string; snapshot?: string; completedAt?: Date } = {}): Promise<void> {
    const body = JSON.stringify({ job: report.job, snapshot: report.snapshot, completed_at: report.completedAt?.toISOString() });
    const res = await this.request('POST', '/v1/backup-completed', { headers: { 'content-type': 'application/json' }, body });
    if (res.statusCode !== 204) throw await this.errorFor(res, 'report a completed backup');
    await drain(res);
  }

  async close(): Promise<void> {
    await this.pool.close();
  }

  private objectPath(name: string): string {
    return `/v1/objects/${name}`;
  }

  private async json(method: 'GET', path: string): Promise<unknown> {
    const res = await this.request(method, path);
    if (res.statusCode !== 200) throw await this.errorFor(res, `${method} ${path}`);
    try {
      return await res.body.json();
    } catch (err) {
      throw this.networkError(err, `${method} ${path}`);
    }
  }

  private async request(
    method: Dispatcher.HttpMethod,
    path: string,
    extra: { headers?: Record<string, string>; body?: Buffer | string | Readable } = {},
  ): Promise<Dispatcher.ResponseData> {
    try {
      return await this.pool.request({
        method,
        path: this.basePath + path,
        headers: { authorization: this.authorization, ...extra.headers },
        body: extra.body ?? null,
      });
    } catch (err) {
      throw this.networkError(err, `${method} ${path}`);
    }
  }

  /** A transport failure as a StoreError: transient unless TLS itself refused us. */
  private networkError(err: unknown, what: string): StoreError {
    if (err instanceof StoreError) return err;
    const code = String((err as NodeJS.ErrnoException)?.code ?? '');
    const permanent = code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code === 'UND_ERR_INVALID_ARG' || /certificate/i.test(String((err as Error)?.message));
    return new NodeStoreError(`target "${this.alias}" (${this.location}): ${what} failed: ${(err as Error)?.message ?? String(err)}${code ? ` (${code})` : ''}`, {
      code: permanent ? 'NJ_STORE_TLS' : 'NJ_STORE_NET',
      permanent,
      cause: err,
    });
  }

  /** The StoreError for an unexpected answer, classified for the retry layer. */
  private async errorFor(res: Dispatcher.ResponseData, what: string, name?: string): Promise<StoreError> {
    let message = '';
    let errorCode = '';
    try {
      const text = (await res.body.text()).slice(0, 2000);
      try {
        const j = JSON.parse(text) as { error?: string; message?: string };
        message = j.message ?? text;
        errorCode = j.error ?? '';
      } catch {
        message = text;
      }
    } catch {
      /* body unreadable: the status says enough */
    }
    const status = res.statusCode;
    const prefix = `target "${this.alias}" (${this.location}): ${what}: `;
    const detail = message ? `${message} (HTTP ${status})` : `HTTP ${status}`;
    if (status === 404 && name !== undefined && errorCode === 'not_found') return new NotFoundError(this.location, name);
    if (status === 400 && errorCode === 'invalid_name') return new InvalidNameError(name ?? '', message);
    if (status === 400 && errorCode === 'digest_mismatch') {
      // The bytes were damaged on the way: sending them again can succeed.
      return new NodeStoreError(prefix + detail, { code: 'NJ_STORE_DIGEST', permanent: false, status });
    }
    if (status === 401) {
      return new NodeStoreError(`${prefix}the peer refused our token (HTTP 401): check ${this.alias}.token_file against the token nightjar add-client printed on the peer`, {
        code: 'NJ_STORE_AUTH',
        permanent: true,
        status,
      });
    }
    if (status === 403) return new NodeStoreError(prefix + detail, { code: 'NJ_STORE_FORBIDDEN', permanent: true, status });
    if (status === 413) return new NodeStoreError(prefix + detail, { code: 'NJ_STORE_TOO_LARGE', permanent: true, status });
    if (status === 507) {
      return new NodeStoreError(prefix + detail, { code: errorCode === 'quota_exceeded' ? 'NJ_STORE_QUOTA' : 'NJ_STORE_NO_SPACE', permanent: true, status });
    }
    const retryAfterMs = parseRetryAfter(res.headers['retry-after'], this.opts.clock);
    if (status === 429 || status >= 500) {
      return new NodeStoreError(prefix + detail, { code: 'NJ_STORE_UNAVAILABLE', permanent: false, status, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
    }
    // 404 on an endpoint, 405, other 4xx: this peer does not speak our protocol.
    return new NodeStoreError(prefix + detail, { code: 'NJ_STORE_PROTOCOL', permanent: true, status });
  }
}

/** Retry-After as milliseconds: delta-seconds or an HTTP date (capped at one hour). */
function parseRetryAfter(header: string | string[] | undefined, clock: Clock): number | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (value === undefined) return undefined;
  const ms = /^\s*\d+\s*$/.test(value) ? Number(value) * 1000 : Date.parse(value) - clock.nowMs();
  if (!Number.isFinite(ms)) return undefined;
  return Math.min(Math.max(0, ms), 3600_000);
}

function colons(hex: string): string {
  return hex === '' ? '(none)' : (hex.match(/../g) ?? []).join(':');
}

/** Discards a response body we do not need; a failure there changes nothing about the answer. */
async function drain(res: Dispatcher.ResponseData): Promise<void> {
  await res.body.dump().catch(() => {});
}

/** Bodies above this size are sent as a stream of UPLOAD_SLICE_BYTES slices. */
const STREAM_ABOVE_BYTES = 256 * 1024;
const UPLOAD_SLICE_BYTES = 64 * 1024;

/**
 * The PUT body. A large buffer is handed to undici as a stream of slices (no copy): its
 * timeout is then re-armed as each slice leaves, so a slow (or throttled) uplink cuts an
 * upload only when it stops moving, not because a 256 MiB pack takes longer than the
 * timeout to send.
 */
function uploadBody(data: Buffer, pace?: WritePacer): Buffer | Readable {
  // Throttled: every body, small or large, is a stream of paced slices (throttled-store.ts).
  if (pace) return pacedBody(data, pace, UPLOAD_SLICE_BYTES);
  if (data.length <= STREAM_ABOVE_BYTES) return data;
  return Readable.from(
    (function* () {
      for (let at = 0; at < data.length; at += UPLOAD_SLICE_BYTES) yield data.subarray(at, Math.min(at + UPLOAD_SLICE_BYTES, data.length));
    })(),
    { objectMode: false },
  );
}
