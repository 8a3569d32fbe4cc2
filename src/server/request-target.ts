/**
 * Strict parsing of the raw HTTP request target of the storage protocol. Object names
 * are taken from the bytes on the wire, never from a decoded or normalised URL: valid
 * names consist only of `[A-Za-z0-9._/-]`, which never needs percent-encoding, so any
 * `%`, backslash, control byte or other character is refused outright rather than decoded
 * (`%2e%2e`, `%2F` and friends cannot smuggle a `..` or a `/` past the name check).
 */
import { InvalidNameError, validateObjectName, validatePrefix } from '../store/store.js';

/** Protocol version prefix of every path. */
export const API_PREFIX = '/v1';

/** Default and largest page of a listing. */
export const LIST_DEFAULT_LIMIT = 1000;
export const LIST_MAX_LIMIT = 10_000;

/** What a request asks for. */
export type RequestTarget =
  | { readonly kind: 'info' }
  | { readonly kind: 'list'; readonly prefix: string; readonly after: string | null; readonly limit: number }
  | { readonly kind: 'object'; readonly name: string }
  | { readonly kind: 'backup-completed' };

/** A request the service answers with `status` and a JSON `{error, message}` body. */
export class RequestError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'RequestError';
  }
}

const SAFE = /^[A-Za-z0-9._/-]*$/;

/**
 * Parses `rawUrl` (the request line's target, as received). Throws RequestError:
 * 400 `invalid_name` for a bad object name or prefix, 400 `bad_request` for a malformed
 * query, 404 `no_such_endpoint` for an unknown path.
 */
export function parseRequestTarget(rawUrl: string): RequestTarget {
  if (!rawUrl.startsWith('/')) throw new RequestError(400, 'bad_request', 'the request target must be an absolute path');
  const q = rawUrl.indexOf('?');
  const path = q >= 0 ? rawUrl.slice(0, q) : rawUrl;
  const query = q >= 0 ? rawUrl.slice(q + 1) : null;

  const objectsPrefix = `${API_PREFIX}/objects/`;
  if (path.startsWith(objectsPrefix) && path.length > objectsPrefix.length) {
    if (query !== null) throw new RequestError(400, 'bad_request', 'object requests take no query string');
    return { kind: 'object', name: checkName(path.slice(objectsPrefix.length)) };
  }
  if (path === `${API_PREFIX}/objects` || path === objectsPrefix) return parseList(query ?? '');
  if (query !== null && query !== '') throw new RequestError(400, 'bad_request', `${path} takes no query string`);
  if (path === `${API_PREFIX}/info`) return { kind: 'info' };
  if (path === `${API_PREFIX}/backup-completed`) return { kind: 'backup-completed' };
  throw new RequestError(404, 'no_such_endpoint', 'no such endpoint (this is a Nightjar storage service, protocol v1)');
}

function checkName(raw: string): string {
  if (raw.length > 1024) throw new RequestError(400, 'invalid_name', 'object name longer than 1024 characters');
  if (!SAFE.test(raw)) {
    throw new RequestError(400, 'invalid_name', 'object names consist of [A-Za-z0-9._-] segments separated by "/"; percent-encoding and other characters are refused');
  }
  try {
    validateObjectName(raw);
  } catch (err) {
    if (err instanceof InvalidNameError) throw new RequestError(400, 'invalid_name', err.message);
    throw err;
  }
  return raw;
}

function parseList(query: string): RequestTarget {
  let prefix = '';
  let after: string | null = null;
  let limit = LIST_DEFAULT_LIMIT;
  const seen = new Set<string>();
  for (const part of query === '' ? [] : query.split('&')) {
    const eq = part.indexOf('=');
    const key = eq >= 0 ? part.slice(0, eq) : part;
    const value = eq >= 0 ? part.slice(eq + 1) : '';
    if (seen.has(key)) throw new RequestError(400, 'bad_request', `query parameter "${key}" given twice`);
    seen.add(key);
    if (!SAFE.test(value) || value.length > 1024) {
      throw new RequestError(400, 'invalid_name', `query parameter "${key}" must be made of [A-Za-z0-9._/-] (no percent-encoding), at most 1024 characters`);
    }
    if (key === 'prefix') {
      try {
        validatePrefix(value);
      } catch (err) {
        if (err instanceof InvalidNameError) throw new RequestError(400, 'invalid_name', err.message);
        throw err;
      }
      prefix = value;
    } else if (key === 'after') {
      after = checkName(value);
    } else if (key === 'limit') {
      if (!/^[0-9]{1,6}$/.test(value) || Number(value) < 1 || Number(value) > LIST_MAX_LIMIT) {
        throw new RequestError(400, 'bad_request', `limit must be an integer from 1 to ${LIST_MAX_LIMIT}`);
      }
      limit = Number(value);
    } else {
      throw new RequestError(400, 'bad_request', `unknown query parameter "${key}" (expected prefix, after, limit)`);
    }
  }
  if (after !== null) {
    const dir = prefix.slice(0, prefix.lastIndexOf('/') + 1);
    if (!after.startsWith(dir)) throw new RequestError(400, 'bad_request', '"after" must lie under the prefix\'s directory');
  }
  return { kind: 'list', prefix, after, limit };
}
