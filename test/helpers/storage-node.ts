import { mkdir, writeFile } from 'node:fs/promises';
import { connect as tlsConnect } from 'node:tls';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { systemClock, type Clock } from '../../src/node/clock.js';
import { parseConfig } from '../../src/node/config/config.js';
import type { NodeConfig, TargetConfig } from '../../src/node/config/types.js';
import { nodeDirLayout, type NodeDirLayout } from '../../src/node/node-dir.js';
import { createClient } from '../../src/server/client-registry.js';
import { startStorageService, type StorageService } from '../../src/server/storage-service.js';
import { tempDir } from './cli.js';

/** A storage node in a temp directory with a running service on port 0. */
export interface StorageFixture {
  readonly dir: string;
  readonly layout: NodeDirLayout;
  readonly config: NodeConfig;
  readonly service: StorageService;
  readonly logs: string[];
  /** Registers a client; returns its token (and delete token when asked). */
  addClient(name: string, opts?: { quota?: number; deleteToken?: boolean }): Promise<{ token: string; deleteToken: string | null }>;
  /** A `node:` TargetConfig for this service with `token` saved in a file. */
  target(alias: string, token: string, fingerprint?: string | null): Promise<TargetConfig>;
  /** Starts the service again (after close) on the same port. */
  restart(): Promise<StorageService>;
  cleanup(): Promise<void>;
}

/**
 * Starts a storage service. `storage` and `clients` are extra node.cfg lines for those
 * sections (listen defaults to 127.0.0.1, port to 0, reserved_space to 0).
 */
export async function startStorageFixture(
  opts: { storage?: string[]; clients?: string[]; clock?: Clock; failedAuthDelayMs?: number } = {},
): Promise<StorageFixture> {
  const { dir, cleanup } = await tempDir('nightjar-storage-');
  const layout = nodeDirLayout(join(dir, 'node'));
  await mkdir(layout.privateDir, { recursive: true, mode: 0o700 });
  const storageLines = opts.storage ?? [];
  const has = (key: string) => storageLines.some((l) => l.trim().startsWith(`${key} `) || l.trim().startsWith(`${key}=`));
  const makeConfig = (port: number | null) => {
    const lines = [
      '[storage]',
      'enabled = true',
      ...(has('listen') ? [] : ['listen = 127.0.0.1']),
      ...(has('reserved_space') ? [] : ['reserved_space = 0']),
      ...storageLines.filter((l) => port === null || !l.trim().startsWith('port')),
      `port = ${port ?? 0}`,
      '[clients]',
      ...(opts.clients ?? []),
    ];
    const { config, problems } = parseConfig(lines.join('\n') + '\n', { file: layout.configFile, nodeDir: layout.root });
    if (!config) throw new Error(`bad test config: ${JSON.stringify(problems)}`);
    return config;
  };
  const config = makeConfig(null);
  const logs: string[] = [];
  const clock = opts.clock ?? systemClock;
  const log = { info: (m: string) => logs.push(`info: ${m}`), warn: (m: string) => logs.push(`warn: ${m}`) };
  const start = (c: NodeConfig) =>
    startStorageService({ config: c, layout, clock, log, ...(opts.failedAuthDelayMs !== undefined ? { failedAuthDelayMs: opts.failedAuthDelayMs } : {}) });
  let service = await start(config);
  const port = Number(/:(\d+)$/.exec(service.url)![1]);
  let tokenFiles = 0;
  return {
    dir,
    layout,
    config,
    get service() {
      return service;
    },
    logs,
    async addClient(name, o = {}) {
      const r = await createClient(layout, name, { quota: o.quota ?? null, deleteToken: o.deleteToken === true, createdAt: clock.now().toISOString() });
      return { token: r.token, deleteToken: r.deleteToken };
    },
    async target(alias, token, fingerprint) {
      const tokenFile = join(dir, `token-${++tokenFiles}`);
      await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
      return {
        alias,
        kind: 'node',
        url: `node:${service.url}`,
        location: service.url,
        passphraseFile: '',
        bandwidth: null,
        budget: null,
        tokenFile,
        fingerprint: fingerprint === undefined ? service.fingerprint : fingerprint,
        endpoint: null,
        region: null,
        pathStyle: false,
        accessKeyFile: null,
        secretKeyFile: null,
        storageClass: null,
      };
    },
    async restart() {
      service = await start(makeConfig(port));
      return service;
    },
    async cleanup() {
      await service.close();
      await cleanup();
    },
  };
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends `head` (request line and headers, without the final blank line) and `body` as
 * bytes on a fresh connection, exactly as given: no client library normalises the target.
 * Adds `Connection: close` and reads the answer to the end.
 */
export function rawRequest(service: StorageService, head: string, body: Buffer | string = ''): Promise<RawResponse> {
  const url = new URL(service.url);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port);
  return new Promise((resolve, reject) => {
    const socket: Socket =
      url.protocol === 'https:' ? tlsConnect({ host, port, rejectUnauthorized: false }) : netConnect({ host, port });
    const chunks: Buffer[] = [];
    socket.on(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      socket.write(Buffer.concat([Buffer.from(`${head}\r\nConnection: close\r\n\r\n`, 'latin1'), Buffer.from(body)]));
    });
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (err) => (chunks.length > 0 ? finish() : reject(err)));
    socket.on('end', finish);
    let done = false;
    function finish() {
      if (done) return;
      done = true;
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      const lines = text.slice(0, split).split('\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const c = l.indexOf(':');
        if (c > 0) headers[l.slice(0, c).toLowerCase()] = l.slice(c + 1).trim();
      }
      resolve({ status, headers, body: split >= 0 ? text.slice(split + 4) : '' });
    }
  });
}
