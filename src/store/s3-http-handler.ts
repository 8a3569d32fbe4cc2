import { Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import { tlsTrust } from '../node/extra-ca.js';
import { pacedBody } from './pacing.js';
import type { WritePacer } from './store.js';

/**
 * Per-request options carrying an upload pacer (S3Store passes them as the second
 * argument of `client.send`; the SDK hands them to `handle` unchanged).
 */
export function paceOptions(pace: WritePacer): { abortSignal?: undefined; pace: WritePacer } {
  return { pace };
}

/**
 * The parts of the AWS SDK's (smithy) HttpRequest this handler reads. Declared here so
 * the store does not import the SDK's transitive `@smithy/*` packages directly.
 */
export interface SdkHttpRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query?: Record<string, string | string[] | null>;
  fragment?: string;
  headers: Record<string, string>;
  body?: unknown;
}

/** What the SDK expects back: status, headers with lower-case names, a Readable body. */
export interface SdkHttpResponse {
  statusCode: number;
  reason?: string;
  headers: Record<string, string>;
  body: Readable;
}

export interface UndiciHttpHandlerOptions {
  /**
   * Idle limit in ms for one request: cut when the response headers take longer than
   * this, or when no body bytes arrive for this long. Idle, not total, so a large part
   * on a throttled line is not cut while it is still moving.
   */
  readonly requestTimeoutMs: number;
  /** Limit for opening a TCP/TLS connection (default min(requestTimeoutMs, 30 s)). */
  readonly connectTimeoutMs?: number;
  /** Connections per origin (default 16; each upload or download holds one). */
  readonly connections?: number;
}

/** Headers undici refuses or manages itself; none of them are part of a SigV4 signature. */
const DROPPED_HEADERS = new Set(['expect', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

/**
 * An AWS SDK v3 `requestHandler` that sends requests through an undici Agent (the
 * project's one HTTP client), so S3 traffic gets undici's connection pool and its
 * idle timeouts (`UND_ERR_HEADERS_TIMEOUT`, `UND_ERR_BODY_TIMEOUT`), which is how a
 * request that hangs is cut. Transport errors are thrown as undici raises them (with
 * `code`); HTTP error statuses are returned, for the SDK to turn into service errors.
 * Safe for concurrent use; `destroy()` closes every connection.
 */
export class UndiciHttpHandler {
  readonly metadata = { handlerProtocol: 'http/1.1' };
  private readonly agent: Agent;
  private readonly config: UndiciHttpHandlerOptions;

  constructor(opts: UndiciHttpHandlerOptions) {
    this.config = opts;
    this.agent = new Agent({
      headersTimeout: opts.requestTimeoutMs,
      bodyTimeout: opts.requestTimeoutMs,
      connectTimeout: opts.connectTimeoutMs ?? Math.min(opts.requestTimeoutMs, 30_000),
      connections: opts.connections ?? 16,
      keepAliveTimeout: 4_000,
      connect: tlsTrust(),
    });
  }

  async handle(
    request: SdkHttpRequest,
    options?: { abortSignal?: unknown; pace?: WritePacer },
  ): Promise<{ response: SdkHttpResponse }> {
    const host = request.hostname.includes(':') && !request.hostname.startsWith('[') ? `[${request.hostname}]` : request.hostname;
    const origin = `${request.protocol.replace(/:?$/, ':')}//${host}${request.port ? `:${request.port}` : ''}`;
    const query = buildQueryString(request.query ?? {});
    const path = request.path + (query ? `?${query}` : '');
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(request.headers)) {
      if (!DROPPED_HEADERS.has(k.toLowerCase())) headers[k] = v;
    }
    const signal = options?.abortSignal instanceof AbortSignal ? options.abortSignal : undefined;
    const res = await this.agent.request({
      origin,
      path,
      method: request.method as Dispatcher.HttpMethod,
      headers,
      body: toBody(request.body, options?.pace),
      ...(signal ? { signal } : {}),
    });
    const outHeaders: Record<string, string> = {};
    for (const [k, v] of Object.entries(res.headers)) {
      if (v === undefined) continue;
      outHeaders[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
    }
    return { response: { statusCode: res.statusCode, headers: outHeaders, body: res.body } };
  }

  updateHttpClientConfig(): void {
    // Settings are fixed at construction; the SDK calls this only when a user changes them.
  }

  httpHandlerConfigs(): Record<string, unknown> {
    return { requestTimeout: this.config.requestTimeoutMs };
  }

  destroy(): void {
    void this.agent.destroy().catch(() => {});
  }

  /** Closes idle connections and waits for running requests. */
  async close(): Promise<void> {
    await this.agent.close();
  }
}

/** Bodies above this size are sent as a stream of STREAM_CHUNK_BYTES slices. */
const STREAM_ABOVE_BYTES = 256 * 1024;
const STREAM_CHUNK_BYTES = 64 * 1024;

/**
 * The body for undici. Large byte bodies become a stream of slices (no copy): undici
 * re-arms its headers timeout each time a slice is accepted by the socket, so an upload
 * is cut only when it stops moving. Handed over whole, a large buffer would be timed
 * from the moment it was queued, and a slow uplink would time out every large PUT.
 */
function toBody(body: unknown, pace?: WritePacer): string | Uint8Array | Readable | null {
  if (body === undefined || body === null) return null;
  if (typeof body === 'string' || body instanceof Readable) return body;
  let bytes: Uint8Array;
  if (body instanceof Uint8Array) bytes = body;
  else if (body instanceof ArrayBuffer) bytes = new Uint8Array(body);
  else if (ArrayBuffer.isView(body)) bytes = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  else throw new TypeError(`unsupported request body type ${Object.prototype.toString.call(body)}`);
  // Throttled (S3Store.write passed a pacer): any size goes as paced slices.
  if (pace) return pacedBody(bytes, pace, STREAM_CHUNK_BYTES);
  if (bytes.byteLength <= STREAM_ABOVE_BYTES) return bytes;
  return Readable.from(slices(bytes), { objectMode: false });
}

function* slices(bytes: Uint8Array): Generator<Buffer> {
  for (let at = 0; at < bytes.byteLength; at += STREAM_CHUNK_BYTES) {
    yield Buffer.from(bytes.buffer, bytes.byteOffset + at, Math.min(STREAM_CHUNK_BYTES, bytes.byteLength - at));
  }
}

/** RFC 3986 encoding, as SigV4 canonicalizes: encodeURIComponent plus !'()*. */
function escapeUri(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function buildQueryString(query: Record<string, string | string[] | null>): string {
  const parts: string[] = [];
  for (const key of Object.keys(query).sort()) {
    const value = query[key];
    const k = escapeUri(key);
    if (value === null || value === undefined) parts.push(k);
    else if (Array.isArray(value)) for (const v of value) parts.push(`${k}=${escapeUri(v)}`);
    else parts.push(`${k}=${escapeUri(value)}`);
  }
  return parts.join('&');
}
