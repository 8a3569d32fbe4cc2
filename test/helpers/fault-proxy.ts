import * as http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * What the proxy does to a share (0–1) of requests. Faults that answer instead of
 * forwarding (503, SlowDown, reset, hang) happen before the request reaches the
 * server, so they never have a side effect there: a retried write is a first write.
 */
export interface FaultPlan {
  /** 503 with an empty body. */
  readonly status503?: number;
  /** 503 with S3's `<Code>SlowDown</Code>` error document. */
  readonly slowDown?: number;
  /** The connection is reset (TCP RST) as soon as the request head arrives. */
  readonly reset?: number;
  /** The request is held and never answered (the client must time out). */
  readonly hang?: number;
  /**
   * Of GET responses with a body of 2 bytes or more: the body is cut short. Full
   * responses lose the connection halfway through the body; ranged (206) responses
   * alternate between that and a well-formed shorter body (Content-Length rewritten,
   * Content-Range left as the server sent it), which only a length check catches.
   */
  readonly truncateGet?: number;
  /**
   * Make the upstream honour `If-None-Match: *` on PUT and on CompleteMultipartUpload
   * (for upstreams that ignore it, like s3rver): per object path, requests carrying it
   * are serialised and answered 412 when an unsigned HEAD finds the object. Upstream
   * must allow anonymous HEAD and must not check the signature of the forwarded request.
   */
  readonly enforceIfNoneMatch?: boolean;
  /** Forward request bodies at most this fast (a slow uplink); default unlimited. */
  readonly uploadBytesPerSec?: number;
  /** Seed of the deterministic fault sequence (default 1). */
  readonly seed?: number;
}

export interface FaultCounts {
  forwarded: number;
  status503: number;
  slowDown: number;
  reset: number;
  hang: number;
  preconditionFailed: number;
  truncateCut: number;
  truncateShort: number;
}

/** A fault-injecting HTTP proxy on 127.0.0.1 in front of one upstream server. */
export interface FaultProxy {
  /** `http://127.0.0.1:PORT`, to use as the S3 endpoint. */
  readonly url: string;
  /** How many requests met each fate so far. */
  readonly counts: FaultCounts;
  /** `METHOD /path?query` of every request received, in order (the last 10 000). */
  readonly requests: string[];
  /** Replaces the plan (and restarts the random sequence from its seed). */
  setPlan(plan: FaultPlan): void;
  /** Stops listening and drops every open connection, held ones included. */
  close(): Promise<void>;
}

/** A small seeded PRNG (mulberry32), so a failing run can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PRECONDITION_XML =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>';

const SLOW_DOWN_XML =
  '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>';

/**
 * Starts a proxy on 127.0.0.1 (ephemeral port) forwarding every request unchanged,
 * Host header included (so SigV4 signatures made for the proxy's address still verify
 * upstream), to `upstream` (`http://host:port`), except those the plan picks to fail.
 */
export async function startFaultProxy(upstream: string, plan: FaultPlan = {}): Promise<FaultProxy> {
  const up = new URL(upstream);
  const agent = new http.Agent({ keepAlive: true });
  const sockets = new Set<Socket>();
  const counts: FaultCounts = { forwarded: 0, status503: 0, slowDown: 0, reset: 0, hang: 0, preconditionFailed: 0, truncateCut: 0, truncateShort: 0 };
  let current: FaultPlan = plan;
  let random = rng(plan.seed ?? 1);
  let shortToggle = false;
  /** enforceIfNoneMatch: the tail of each object path's chain of conditional writes. */
  const keyChains = new Map<string, Promise<void>>();

  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (requests.length > 10_000) requests.shift();
    const r = random();
    let edge = 0;
    const hit = (share: number | undefined) => r < (edge += share ?? 0);
    if (hit(current.status503)) {
      counts.status503++;
      res.writeHead(503, { connection: 'close', 'content-length': 0 }).end();
      return;
    }
    if (hit(current.slowDown)) {
      counts.slowDown++;
      res.writeHead(503, { connection: 'close', 'content-type': 'application/xml', 'content-length': Buffer.byteLength(SLOW_DOWN_XML) });
      res.end(SLOW_DOWN_XML);
      return;
    }
    if (hit(current.reset)) {
      counts.reset++;
      req.socket.resetAndDestroy();
      return;
    }
    if (hit(current.hang)) {
      counts.hang++;
      return; // never answered; close() destroys the socket
    }
    const truncate = req.method === 'GET' && random() < (current.truncateGet ?? 0);
    const url = new URL(req.url ?? '/', 'http://x');
    const conditional =
      current.enforceIfNoneMatch &&
      req.headers['if-none-match'] === '*' &&
      ((req.method === 'PUT' && !url.searchParams.has('partNumber')) || (req.method === 'POST' && url.searchParams.has('uploadId')));
    if (conditional) {
      const previous = keyChains.get(url.pathname) ?? Promise.resolve();
      const mine = previous.then(
        () =>
          new Promise<void>((release) => {
            const head = http.request({ host: up.hostname, port: up.port, method: 'HEAD', path: url.pathname, agent }, (headRes) => {
              headRes.resume();
              if (headRes.statusCode === 200) {
                counts.preconditionFailed++;
                req.resume();
                res.writeHead(412, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(PRECONDITION_XML) });
                res.end(PRECONDITION_XML);
                release();
              } else {
                forward(release);
              }
            });
            head.on('error', () => {
              res.socket?.destroy();
              release();
            });
            head.end();
          }),
      );
      keyChains.set(url.pathname, mine);
      void mine.then(() => {
        if (keyChains.get(url.pathname) === mine) keyChains.delete(url.pathname);
      });
      return;
    }
    forward(() => {});

    function forward(done: () => void): void {
      counts.forwarded++;
      const upReq = http.request(
        { host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers, agent },
        (upRes) => {
          const length = Number(upRes.headers['content-length'] ?? -1);
          const status = upRes.statusCode ?? 502;
          if (!truncate || (status !== 200 && status !== 206) || length < 2) {
            res.writeHead(status, upRes.headers);
            upRes.pipe(res);
            upRes.on('end', done);
            upRes.on('error', done);
            return;
          }
          done();
          const chunks: Buffer[] = [];
          upRes.on('data', (c: Buffer) => chunks.push(c));
          upRes.on('end', () => {
            const body = Buffer.concat(chunks);
            const half = body.subarray(0, Math.floor(body.length / 2));
            if (status === 206 && (shortToggle = !shortToggle)) {
              counts.truncateShort++;
              res.writeHead(status, { ...upRes.headers, 'content-length': half.length });
              res.end(half);
            } else {
              counts.truncateCut++;
              res.writeHead(status, upRes.headers);
              res.write(half, () => res.socket?.destroy());
            }
          });
        },
      );
      upReq.on('error', () => {
        res.socket?.destroy();
        done();
      });
      const rate = current.uploadBytesPerSec;
      if (!rate) {
        req.pipe(upReq);
        return;
      }
      const startedMs = performance.now();
      let sent = 0;
      req.on('data', (chunk: Buffer) => {
        upReq.write(chunk);
        sent += chunk.length;
        const aheadMs = (sent / rate) * 1000 - (performance.now() - startedMs);
        if (aheadMs > 0) {
          req.pause();
          setTimeout(() => req.resume(), aheadMs);
        }
      });
      req.on('end', () => upReq.end());
    }
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.keepAliveTimeout = 2_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    requests,
    setPlan(p: FaultPlan) {
      current = p;
      random = rng(p.seed ?? 1);
    },
    async close() {
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
