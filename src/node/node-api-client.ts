import { readFile } from 'node:fs/promises';
import type { NodeDirLayout } from './node-dir.js';

/** The API of a node running on this node directory, as the CLI uses it. */
export interface NodeApiClient {
  readonly url: string;
  get<T>(path: string): Promise<T>;
  post<T>(path: string, body?: unknown): Promise<T>;
}

export class NodeApiError extends Error {
  readonly code = 'NJ_NODE_API';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * A client for the node running on `layout`, or null when none runs there (no node.url,
 * or nobody answers at it). The token comes from private/api_auth_token and travels as a
 * bearer token, so no cookie or CSRF token is involved.
 */
export async function connectToRunningNode(layout: NodeDirLayout): Promise<NodeApiClient | null> {
  let base: string;
  let token: string;
  try {
    base = (await readFile(layout.nodeUrlFile, 'utf8')).trim();
    token = (await readFile(layout.apiTokenFile, 'utf8')).trim();
  } catch {
    return null;
  }
  const call = async <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => {
    const res = await fetch(new URL(path.replace(/^\//, ''), base), {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: body !== undefined ? JSON.stringify(body) : null,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) {
      let message = text.trim();
      try {
        message = (JSON.parse(text) as { error?: string }).error ?? message;
      } catch {
        // plain-text error body
      }
      throw new NodeApiError(`the running node answered ${res.status}: ${message}`, res.status);
    }
    return JSON.parse(text) as T;
  };
  const client: NodeApiClient = { url: base, get: (p) => call('GET', p), post: (p, b) => call('POST', p, b) };
  try {
    await client.get('/api/v1/status');
  } catch (err) {
    if (err instanceof NodeApiError) throw err; // a node answers, but refuses us: say so
    return null; // a stale node.url from a node that died
  }
  return client;
}
