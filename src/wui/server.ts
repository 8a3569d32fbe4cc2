import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type express from 'express';

/** A listening status page. */
export interface WebServer {
  /** `http://127.0.0.1:3456` (loopback form for wildcard binds). */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Listens with `app` on host:port (port 0 picks a free one). Rejects with a clear message
 * when the address is taken. close() stops accepting and ends idle keep-alive and event
 * stream connections, so a node stop never hangs on an open browser tab.
 */
export async function listenWeb(app: express.Express, host: string, port: number): Promise<WebServer> {
  const server: Server = createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`the status page cannot listen on ${host}:${port}: the address is in use ([node] web.port)`)
          : err,
      );
    });
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${address.port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** True for addresses only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(?:\.\d{1,3}){3}$/.test(h) || h === '::ffff:127.0.0.1';
}
