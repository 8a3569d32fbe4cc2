/**
 * The storage service a node offers its peers (`[storage] enabled = true`): a write-once
 * object store per client over HTTPS, speaking the protocol in docs/STORAGE-PROTOCOL.md.
 *
 * Built on plain node:https rather than express: the protocol has six fixed routes, object
 * names must be checked on the raw request target (express decodes and routes first),
 * uploads are streamed to disk with exact control of backpressure, abort and early
 * refusal, and there are no middleware, cookies or views to share with the web UI.
 */
import { promises as fsp } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Clock } from '../node/clock.js';
import type { NodeConfig } from '../node/config/types.js';
import { formatBytes, formatDuration } from '../node/config/units.js';
import type { NodeDirLayout } from '../node/node-dir.js';
import { ensureStorageCertificate } from '../node/tls-cert.js';
import { LocalStore } from '../store/local-store.js';
import { FailedAuthLimiter } from '../wui/auth.js';
import { ClientActivity, type BackupReport } from './client-activity.js';
import { ClientRegistry, type AuthenticatedClient, type ClientRecord } from './client-registry.js';
import { ClientSpace } from './client-space.js';
import { parseRequestTarget, RequestError, type RequestTarget } from './request-target.js';

/** What the web UI and alerts show about one client. */
export interface ClientStatus {
  readonly name: string;
  readonly appendOnly: boolean;
  /** Bytes, or null for no quota. */
  readonly quota: number | null;
  readonly usedBytes: number;
  readonly objects: number;
  /** ISO times, null when never. */
  readonly createdAt: string;
  readonly lastSeenAt: string | null;
  readonly lastBackupAt: string | null;
  readonly lastBackup: BackupReport | null;
}

/** A client's settings in force: node.cfg's `[clients]` entry overrides the registry's record. */
export function effectiveClientSettings(clients: NodeConfig['clients'], record: ClientRecord): { appendOnly: boolean; quota: number | null } {
  const fromConfig = clients[record.name];
  return { appendOnly: fromConfig ? fromConfig.appendOnly : record.appendOnly, quota: fromConfig?.quota ?? record.quota };
}

/** One client's status: its settings in force, its space's usage and its last activity. */
export async function clientStatus(
  record: ClientRecord,
  clients: NodeConfig['clients'],
  space: ClientSpace,
  activity: ClientActivity,
): Promise<ClientStatus> {
  const settings = effectiveClientSettings(clients, record);
  const usage = await space.usage();
  const state = await activity.get(record.name);
  return {
    name: record.name,
    appendOnly: settings.appendOnly,
    quota: settings.quota,
    usedBytes: usage.bytes,
    objects: usage.objects,
    createdAt: record.createdAt,
    lastSeenAt: state.lastSeenAt,
    lastBackupAt: state.lastBackup?.reportedAt ?? null,
    lastBackup: state.lastBackup,
  };
}

/** A client that has not completed a backup within `[storage] stale_after`. */
export interface StaleClient {
  readonly name: string;
  readonly lastBackupAt: string | null;
  /** `client "bob" has not completed a backup in 3d 4h (last: 2025-…)`. */
  readonly message: string;
}

/** A running storage service. */
export interface StorageService {
  /** A URL the service answers on (loopback form for wildcard binds), e.g. `https://127.0.0.1:7788`. */
  readonly url: string;
  /** Every address:port listened on. */
  readonly addresses: readonly string[];
  /** The certificate fingerprint peers pin (`ab:cd:…`), or null with plain_http. */
  readonly fingerprint: string | null;
  /**
   * Stops accepting connections, lets running requests finish for up to 5 s (then cuts
   * them; an interrupted upload leaves nothing), and saves client activity. Idempotent.
   */
  close(): Promise<void>;
  /** Every registered client with its usage and activity (walks a client's directory once). */
  clients(): Promise<ClientStatus[]>;
  /** Clients that have not completed a backup within `[storage] stale_after` of `now`. */
  staleClients(now: Date): Promise<StaleClient[]>;
}

export interface StorageServiceOptions {
  readonly config: NodeConfig;
  readonly layout: NodeDirLayout;
  readonly clock: Clock;
  readonly log: { info(m: string): void; warn(m: string): void };
  /** Delay before answering a bad token (default 1 s; see FailedAuthLimiter). */
  readonly failedAuthDelayMs?: number;
}

/** Largest body of a backup-completed report. */
const REPORT_MAX_BYTES = 4096;
/** An unauthenticated or refused request body larger than this is not read: the connection is closed. */
const UNAUTHENTICATED_DRAIN_BYTES = 64 * 1024;
/** How long close() waits for running requests before cutting them. */
const CLOSE_GRACE_MS = 5000;
/** A connection idle (no bytes either way) this long is closed; slow uploads keep it busy. */
const SOCKET_IDLE_MS = 120_000;

/**
 * Starts the storage service on `[storage] listen`/`port` (port 0 picks a free port).
 * `0.0.0.0` also listens on `::` (IPv6 only) when the host has IPv6; `::` is dual-stack.
 * With TLS (the default) the certificate is created in `private/` on first start. Leftover
 * temp files of uploads interrupted by a previous crash are removed. Rejects when an
 * address cannot be bound (with the config key to change).
 */
export async function startStorageService(opts: StorageServiceOptions): Promise<StorageService> {
  const { config, layout, clock, log } = opts;
  const storage = config.storage;
  await fsp.mkdir(storage.path, { recursive: true, mode: 0o700 });
  const cert = storage.plainHttp ? null : await ensureStorageCertificate(layout);
  const registry = new ClientRegistry(layout, (m) => log.warn(m));
  const activity = new ClientActivity(join(storage.path, '.state'), clock.nowMs());
  const limiter = new FailedAuthLimiter(clock, opts.failedAuthDelayMs);
  const spaces = new Map<string, ClientSpace>();
  const spaceOf = (name: string) => {
    let s = spaces.get(name);
    if (!s) spaces.set(name, (s = new ClientSpace(join(storage.path, name))));
    return s;
  };
  /** Bytes of all uploads in progress: counted against the disk's free space. */
  let uploadingBytes = 0;

  const effective = (record: ClientRecord) => effectiveClientSettings(config.clients, record);

  for (const record of await registry.all()) {
    // No upload runs before we listen, so every temp file is a crash leftover.
    await new LocalStore(join(storage.path, record.name)).removeTempFiles(new Date(clock.nowMs() + 1000)).catch(() => 0);
  }

  async function freeBytes(): Promise<number> {
    const st = await fsp.statfs(storage.path);
    return st.bavail * st.bsize;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const address = req.socket.remoteAddress ?? 'unknown';
    const auth = await registry.authenticate(bearerToken(req.headers.authorization));
    if (!auth) {
      if (limiter.isBlocked(address)) {
        send(req, res, new RequestError(429, 'too_many_failures', 'too many failed logins from this address; try again later', { 'retry-after': '60' }), UNAUTHENTICATED_DRAIN_BYTES);
        return;
      }
      log.warn(`storage: refused a request from ${address}: ${req.headers.authorization ? 'unknown token' : 'no token'}`);
      await limiter.fail(address);
      send(req, res, new RequestError(401, 'unauthorized', 'missing or unknown token (Authorization: Bearer TOKEN)', { 'www-authenticate': 'Bearer realm="nightjar-storage"' }), UNAUTHENTICATED_DRAIN_BYTES);
      return;
    }
    const name = auth.record.name;
    await activity.seen(name, clock.nowMs());
    const target = parseRequestTarget(req.url ?? '');
    const method = req.method ?? 'GET';
    switch (target.kind) {
      case 'info':
        requireMethod(method, ['GET']);
        return sendInfo(auth, res);
      case 'list':
        requireMethod(method, ['GET']);
        return sendList(spaceOf(name), target, res);
      case 'backup-completed':
        requireMethod(method, ['POST']);
        return recordBackup(name, req, res);
      case 'object':
        requireMethod(method, ['GET', 'HEAD', 'PUT', 'DELETE']);
        if (method === 'GET' || method === 'HEAD') return sendObject(spaceOf(name), target.name, req, res);
        if (method === 'PUT') return putObject(auth, target.name, req, res);
        return deleteObject(auth, target.name, res);
    }
  }

  async function sendInfo(auth: AuthenticatedClient, res: ServerResponse): Promise<void> {
    const { appendOnly, quota } = effective(auth.record);
    const usage = await spaceOf(auth.record.name).usage();
    const free = Math.max(0, (await freeBytes()) - uploadingBytes - storage.reservedSpace);
    sendJson(res, 200, {
      protocol: 1,
      client: auth.record.name,
      append_only: appendOnly,
      can_delete: !appendOnly || auth.withDeleteToken,
      quota,
      used_bytes: usage.bytes,
      objects: usage.objects,
      free_bytes: quota === null ? free : Math.min(free, Math.max(0, quota - usage.bytes)),
      max_object_size: storage.maxObjectSize,
    });
  }

  async function sendList(space: ClientSpace, target: Extract<RequestTarget, { kind: 'list' }>, res: ServerResponse): Promise<void> {
    const page = await space.listPage(target.prefix, target.after, target.limit);
    sendJson(res, 200, page);
  }

  async function sendObject(space: ClientSpace, name: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const opened = await space.open(name);
    if (!opened) throw new RequestError(404, 'not_found', `no object ${name}`);
    const { fh, size } = opened;
    try {
      const range = req.method === 'GET' ? parseRange(req.headers.range, size) : null;
      const start = range?.start ?? 0;
      const length = range ? range.end - range.start + 1 : size;
      res.statusCode = range ? 206 : 200;
      res.setHeader('content-type', 'application/octet-stream');
      res.setHeader('accept-ranges', 'bytes');
      res.setHeader('content-length', String(length));
      if (range) res.setHeader('content-range', `bytes ${range.start}-${range.end}/${size}`);
      if (req.method === 'HEAD' || length === 0) {
        res.end();
        return;
      }
      await pipeline(fh.createReadStream({ start, end: start + length - 1, autoClose: false }), res);
    } finally {
      await fh.close().catch(() => {});
    }
  }

  async function putObject(auth: AuthenticatedClient, name: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const client = auth.record.name;
    const space = spaceOf(client);
    const size = contentLength(req);
    const digest = req.headers['x-nightjar-sha256'];
    if (typeof digest !== 'string' || !/^[0-9a-fA-F]{64}$/.test(digest)) {
      throw new RequestError(400, 'bad_digest', 'x-nightjar-sha256 must be the SHA-256 of the body, 64 hex digits');
    }
    if (size > storage.maxObjectSize) {
      throw new RequestError(413, 'too_large', `object of ${formatBytes(size)} is larger than this node's max_object_size of ${formatBytes(storage.maxObjectSize)}`);
    }
    if ((await space.size(name)) !== null) throw await space.conflict(name);
    const usage = await space.usage();
    const { quota } = effective(auth.record);
    if (quota !== null && usage.bytes + space.reservedBytes + size > quota) {
      log.warn(`storage: client "${client}" is over its quota of ${formatBytes(quota)}`);
      throw new RequestError(
        507,
        'quota_exceeded',
        `quota exceeded: client "${client}" stores ${formatBytes(usage.bytes)} of its ${formatBytes(quota)} quota` +
          (space.reservedBytes > 0 ? ` (plus ${formatBytes(space.reservedBytes)} being uploaded)` : '') +
          `; this object needs ${formatBytes(size)}. Ask the storage node's owner for more ([clients] ${client}.quota) or prune.`,
      );
    }
    const free = await freeBytes();
    if (free - uploadingBytes - size < storage.reservedSpace) {
      log.warn(`storage: refused an upload of ${formatBytes(size)} by "${client}": the disk is down to ${formatBytes(free)} free (reserved_space ${formatBytes(storage.reservedSpace)})`);
      throw new RequestError(
        507,
        'insufficient_space',
        `the storage node is out of space: ${formatBytes(free)} free, of which it keeps ${formatBytes(storage.reservedSpace)} (reserved_space); this object needs ${formatBytes(size)}`,
      );
    }
    space.reservedBytes += size;
    uploadingBytes += size;
    try {
      await space.write(name, req, size, digest);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT') {
        throw new RequestError(507, 'insufficient_space', 'the storage node ran out of disk space during the upload; nothing was stored');
      }
      throw err;
    } finally {
      space.reservedBytes -= size;
      uploadingBytes -= size;
    }
    res.statusCode = 201;
    res.setHeader('content-length', '0');
    res.end();
  }

  async function deleteObject(auth: AuthenticatedClient, name: string, res: ServerResponse): Promise<void> {
    const { appendOnly } = effective(auth.record);
    // A client must always be able to remove its own locks, or one crash would lock it out.
    if (appendOnly && !auth.withDeleteToken && !name.startsWith('locks/')) {
      throw new RequestError(
        403,
        'append_only',
        `client "${auth.record.name}" is append-only: it may add objects but not delete them (locks/ excepted); prune with the client's delete token or on the storage node`,
      );
    }
    await spaceOf(auth.record.name).delete(name);
    res.statusCode = 204;
    res.end();
  }

  async function recordBackup(client: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let total = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > REPORT_MAX_BYTES) throw new RequestError(413, 'too_large', `a backup report is at most ${REPORT_MAX_BYTES} bytes`);
      chunks.push(chunk);
    }
    let body: Record<string, unknown>;
    try {
      body = total === 0 ? {} : (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new Error('not an object');
    } catch {
      throw new RequestError(400, 'bad_request', 'the body must be a JSON object {"job", "snapshot", "completed_at"}');
    }
    const text = (key: string, max: number): string | null => {
      const v = body[key];
      if (v === undefined || v === null) return null;
      if (typeof v !== 'string' || v.length > max) throw new RequestError(400, 'bad_request', `"${key}" must be a string of at most ${max} characters`);
      return v;
    };
    const completedAt = text('completed_at', 40);
    if (completedAt !== null && Number.isNaN(Date.parse(completedAt))) throw new RequestError(400, 'bad_request', '"completed_at" must be an ISO time');
    await activity.backupCompleted(client, {
      reportedAt: clock.now().toISOString(),
      completedAt: completedAt === null ? null : new Date(completedAt).toISOString(),
      job: text('job', 200),
      snapshot: text('snapshot', 200),
    });
    res.statusCode = 204;
    res.end();
  }

  const inFlight = new Set<Promise<void>>();
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    const p = handle(req, res)
      .catch((err: unknown) => {
        if (err instanceof RequestError) return send(req, res, err, storage.maxObjectSize);
        if (req.destroyed || res.destroyed || isAbort(err)) {
          res.destroy();
          return;
        }
        log.warn(`storage: ${req.method} ${safeUrl(req.url)} failed: ${(err as Error).message}`);
        send(req, res, new RequestError(500, 'internal', 'internal error on the storage node'), 0);
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };

  const makeServer = (): Server => {
    const server = cert
      ? createHttpsServer({ key: cert.keyPem, cert: cert.certPem, minVersion: 'TLSv1.2' }, onRequest)
      : createHttpServer(onRequest);
    server.requestTimeout = 0; // a 256 MiB upload over DSL takes minutes; the idle timeout guards instead
    server.headersTimeout = 30_000;
    server.keepAliveTimeout = 30_000;
    server.setTimeout(SOCKET_IDLE_MS, (socket) => socket.destroy());
    return server;
  };

  const servers: Server[] = [];
  const addresses: string[] = [];
  let port = storage.port;
  const listen = async (host: string, optional: boolean, ipv6Only = false) => {
    const server = makeServer();
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host, port, ipv6Only }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (optional && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL' || code === 'EADDRINUSE')) {
        log.info(`storage: not listening on [${host}]:${port} (${code})`);
        return;
      }
      throw new Error(
        code === 'EADDRINUSE'
          ? `the storage service cannot listen on ${host}:${port}: the address is in use ([storage] port)`
          : `the storage service cannot listen on ${host}:${port}: ${(err as Error).message} ([storage] listen)`,
      );
    }
    port = (server.address() as AddressInfo).port; // port 0: the second listener takes the same port
    servers.push(server);
    addresses.push(host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);
  };
  try {
    await listen(storage.listen, false);
    if (storage.listen === '0.0.0.0') await listen('::', true, true);
  } catch (err) {
    for (const s of servers) s.close();
    throw err;
  }

  const shownHost = storage.listen === '0.0.0.0' ? '127.0.0.1' : storage.listen === '::' ? '::1' : storage.listen;
  const url = `${cert ? 'https' : 'http'}://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;
  log.info(`storage service on ${addresses.map((a) => `${cert ? 'https' : 'http'}://${a}`).join(', ')}${cert ? ` (certificate fingerprint ${cert.fingerprint})` : ' (plain HTTP)'}`);

  async function clients(): Promise<ClientStatus[]> {
    const out: ClientStatus[] = [];
    for (const record of await registry.all()) out.push(await clientStatus(record, config.clients, spaceOf(record.name), activity));
    return out;
  }

  let closing: Promise<void> | null = null;
  return {
    url,
    addresses,
    fingerprint: cert?.fingerprint ?? null,
    clients,
    staleClients: async (now) => findStaleClients(await clients(), now, storage.staleAfterMs),
    close() {
      closing ??= (async () => {
        const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
        for (const s of servers) s.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>((r) => (timer = setTimeout(r, CLOSE_GRACE_MS)));
        await Promise.race([Promise.allSettled([...inFlight]), grace]);
        clearTimeout(timer);
        for (const s of servers) s.closeAllConnections();
        await Promise.allSettled([...inFlight]);
        await closed;
        await activity.flush(clock.nowMs()).catch((err: Error) => log.warn(`storage: could not save client activity: ${err.message}`));
      })();
      return closing;
    },
  };
}

/**
 * The clients whose last completed backup (or, never having completed one, whose
 * registration) is more than `staleAfterMs` before `now`. Pure.
 */
export function findStaleClients(clients: readonly ClientStatus[], now: Date, staleAfterMs: number): StaleClient[] {
  const out: StaleClient[] = [];
  for (const c of clients) {
    const since = Date.parse(c.lastBackupAt ?? c.createdAt);
    const age = now.getTime() - since;
    if (!(age > staleAfterMs)) continue;
    out.push({
      name: c.name,
      lastBackupAt: c.lastBackupAt,
      message:
        c.lastBackupAt === null
          ? `client "${c.name}" has never completed a backup (added ${formatDuration(age)} ago)`
          : `client "${c.name}" has not completed a backup in ${formatDuration(age)} (last: ${c.lastBackupAt})`,
    });
  }
  return out;
}

function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer +([A-Za-z0-9._~+/=-]+) *$/i.exec(header ?? '');
  return m?.[1];
}

function requireMethod(method: string, allowed: readonly string[]): void {
  if (!allowed.includes(method)) {
    throw new RequestError(405, 'method_not_allowed', `${method} is not allowed here (allowed: ${allowed.join(', ')})`, { allow: allowed.join(', ') });
  }
}

function contentLength(req: IncomingMessage): number {
  const raw = req.headers['content-length'];
  if (raw === undefined) throw new RequestError(411, 'length_required', 'uploads need a Content-Length header (chunked bodies are refused)');
  if (!/^[0-9]{1,15}$/.test(raw)) throw new RequestError(400, 'bad_request', 'Content-Length is not a byte count');
  return Number(raw);
}

/** `bytes=A-B` or `bytes=A-` inside [0, size); null without a Range header. */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | null {
  if (header === undefined) return null;
  const m = /^bytes=([0-9]{1,15})-([0-9]{0,15})$/.exec(header.trim());
  if (!m) throw new RequestError(400, 'bad_range', 'Range must be one range "bytes=START-END" or "bytes=START-"');
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Number(m[2]);
  if (end < start || end >= size) {
    throw new RequestError(416, 'bad_range', `range ${start}-${end} is not inside the object (${size} bytes)`, { 'content-range': `bytes */${size}` });
  }
  return { start, end };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('content-type', 'application/json; charset=utf-8');
  res.setHeader('content-length', String(Buffer.byteLength(text)));
  res.end(text);
}

/**
 * Answers with an error. A request body not yet read is drained (so the connection can be
 * reused) when it is at most `drainLimit` bytes; a larger or unknown-length one is not
 * read at all and the connection is closed after the answer.
 */
function send(req: IncomingMessage, res: ServerResponse, err: RequestError, drainLimit: number): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const declared = Number(req.headers['content-length'] ?? (req.headers['transfer-encoding'] ? Infinity : 0));
  if (!req.complete && declared > drainLimit) res.setHeader('connection', 'close');
  for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
  if (req.method === 'HEAD') {
    res.statusCode = err.status;
    res.end();
    return;
  }
  sendJson(res, err.status, { error: err.errorCode, message: err.message });
}

function isAbort(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (err as Error).message === 'aborted';
}

/** The request target for logs, shortened; it never holds a token (those go in a header). */
function safeUrl(url: string | undefined): string {
  const u = url ?? '';
  return u.length > 200 ? `${u.slice(0, 200)}…` : JSON.stringify(u).slice(1, -1);
}
