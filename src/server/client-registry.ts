/**
 * The clients a storage node serves: one record per client in `private/clients/NAME.json`
 * holding only SHA-256 hashes of its tokens (a leaked node directory does not leak the
 * tokens), its default quota and append-only flag (node.cfg `[clients]` overrides both),
 * and when it was added. `nightjar add-client` writes records; the running service reads
 * them and notices new or removed records without a restart.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { NAME_PATTERN } from '../node/config/keys.js';
import type { NodeDirLayout } from '../node/node-dir.js';

/** A client as stored on disk (no token, only its hash). */
export interface ClientRecord {
  readonly name: string;
  /** SHA-256 of the client's token, hex. */
  readonly tokenSha256: string;
  /** SHA-256 of the separate delete (prune) token, hex; null when none was made. */
  readonly deleteTokenSha256: string | null;
  /** Default quota in bytes (null = none); `[clients] NAME.quota` overrides it. */
  readonly quota: number | null;
  /** Default append-only flag; `[clients] NAME.append_only` overrides it. */
  readonly appendOnly: boolean;
  /** ISO time the client was added. */
  readonly createdAt: string;
}

/** A client whose token matched, and which of its tokens it was. */
export interface AuthenticatedClient {
  readonly record: ClientRecord;
  /** True when the request carried the delete token (which may also prune). */
  readonly withDeleteToken: boolean;
}

export class ClientExistsError extends Error {
  readonly code = 'NJ_CLIENT_EXISTS';
  constructor(readonly clientName: string) {
    super(`client "${clientName}" already exists; use --replace to issue it new tokens (its old ones stop working)`);
    this.name = 'ClientExistsError';
  }
}

/** `private/clients`. */
export function clientsDir(layout: NodeDirLayout): string {
  return join(layout.privateDir, 'clients');
}

/** SHA-256 of a token, hex: what records keep. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A fresh random token: 32 bytes, base64url (43 characters, no padding). */
export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export interface CreateClientOptions {
  /** Default quota; with `replace` and left undefined, the existing record's is kept. */
  readonly quota?: number | null;
  /** Default append-only flag (true); with `replace` and left undefined, the existing record's is kept. */
  readonly appendOnly?: boolean;
  /** Also make a delete token (for pruning an append-only client from its own node). */
  readonly deleteToken?: boolean;
  /** Replace an existing client's record (its old tokens stop working; data stays). */
  readonly replace?: boolean;
  /** ISO creation time (from the caller's Clock). */
  readonly createdAt: string;
}

/**
 * Creates (or with `replace`, re-issues) a client and returns its new tokens; the
 * plaintext tokens exist only in the return value. The record is written atomically
 * (temp file, fsync, rename) with mode 0600 in a 0700 directory. Throws
 * ClientExistsError when the client exists and `replace` is not set, and a plain Error
 * for a name that is not `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`.
 */
export async function createClient(
  layout: NodeDirLayout,
  name: string,
  opts: CreateClientOptions,
): Promise<{ record: ClientRecord; token: string; deleteToken: string | null }> {
  if (!NAME_PATTERN.test(name)) {
    throw new Error(`invalid client name ${JSON.stringify(name)}: use 1-64 letters, digits, _ and -, starting with a letter or digit`);
  }
  const dir = clientsDir(layout);
  await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
  await fsp.chmod(dir, 0o700);
  const file = join(dir, `${name}.json`);
  const previous = opts.replace ? (await loadClientRecords(layout)).find((r) => r.name === name) : undefined;
  const token = newToken();
  const deleteToken = opts.deleteToken ? newToken() : null;
  const record: ClientRecord = {
    name,
    tokenSha256: hashToken(token),
    deleteTokenSha256: deleteToken ? hashToken(deleteToken) : null,
    quota: opts.quota !== undefined ? opts.quota : (previous?.quota ?? null),
    appendOnly: opts.appendOnly ?? previous?.appendOnly ?? true,
    createdAt: previous?.createdAt ?? opts.createdAt,
  };
  const text = JSON.stringify(toJson(record), null, 2) + '\n';
  const temp = join(dir, `.${name}.json.tmp-${randomBytes(6).toString('hex')}`);
  const fh = await fsp.open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    if (opts.replace) await fsp.rename(temp, file);
    else {
      try {
        await fsp.link(temp, file); // fails instead of overwriting a client added meanwhile
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new ClientExistsError(name);
        throw err;
      }
    }
  } finally {
    await fsp.unlink(temp).catch(() => {});
  }
  await syncDir(dir);
  return { record, token, deleteToken };
}

/**
 * Every valid client record in `private/clients`, sorted by name. A malformed record is
 * reported through `onProblem` and skipped (its client cannot log in), never thrown.
 */
export async function loadClientRecords(layout: NodeDirLayout, onProblem: (message: string) => void = () => {}): Promise<ClientRecord[]> {
  const dir = clientsDir(layout);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const out: ClientRecord[] = [];
  for (const file of names.sort()) {
    if (!file.endsWith('.json') || file.startsWith('.')) continue;
    const name = file.slice(0, -'.json'.length);
    try {
      const record = fromJson(JSON.parse(await fsp.readFile(join(dir, file), 'utf8')), name);
      out.push(record);
    } catch (err) {
      onProblem(`ignoring client record ${join(dir, file)}: ${(err as Error).message}`);
    }
  }
  return out;
}

/**
 * The client records, re-read whenever `private/clients` changes (its mtime moves when
 * add-client renames a record in or one is removed), so a running service picks up new
 * clients and revocations without a restart. `authenticate` may be called concurrently.
 */
export class ClientRegistry {
  private records: ClientRecord[] = [];
  private loadedMtimeMs = -1;
  private loading: Promise<void> | null = null;

  constructor(
    private readonly layout: NodeDirLayout,
    private readonly onProblem: (message: string) => void = () => {},
  ) {}

  /** The current records (re-read when the directory changed). */
  async all(): Promise<readonly ClientRecord[]> {
    await this.refresh();
    return this.records;
  }

  /**
   * The client owning `token`, or null. Compares the token's hash against every token
   * hash with timingSafeEqual and no early exit, so timing reveals neither which client
   * nor how much of a hash matched.
   */
  async authenticate(token: string | undefined): Promise<AuthenticatedClient | null> {
    await this.refresh();
    if (token === undefined || token.length === 0 || token.length > 512) return null;
    const presented = Buffer.from(hashToken(token), 'hex');
    let found: AuthenticatedClient | null = null;
    for (const record of this.records) {
      const main = timingSafeEqual(presented, Buffer.from(record.tokenSha256, 'hex'));
      const del = record.deleteTokenSha256 !== null && timingSafeEqual(presented, Buffer.from(record.deleteTokenSha256, 'hex'));
      if ((main || del) && found === null) found = { record, withDeleteToken: del };
    }
    return found;
  }

  private async refresh(): Promise<void> {
    while (this.loading) await this.loading;
    let mtimeMs: number;
    try {
      mtimeMs = (await fsp.stat(clientsDir(this.layout))).mtimeMs;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mtimeMs = 0;
    }
    if (mtimeMs === this.loadedMtimeMs) return;
    this.loading = (async () => {
      this.records = await loadClientRecords(this.layout, this.onProblem);
      this.loadedMtimeMs = mtimeMs;
    })();
    try {
      await this.loading;
    } finally {
      this.loading = null;
    }
  }
}

function toJson(r: ClientRecord): Record<string, unknown> {
  return {
    name: r.name,
    token_sha256: r.tokenSha256,
    delete_token_sha256: r.deleteTokenSha256,
    quota: r.quota,
    append_only: r.appendOnly,
    created_at: r.createdAt,
  };
}

function fromJson(j: unknown, name: string): ClientRecord {
  if (!NAME_PATTERN.test(name)) throw new Error('the file name is not a valid client name');
  const o = j as Record<string, unknown>;
  const hex = (v: unknown) => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
  if (typeof o !== 'object' || o === null) throw new Error('not a JSON object');
  if (o.name !== name) throw new Error(`"name" is ${JSON.stringify(o.name)}, expected ${JSON.stringify(name)}`);
  if (!hex(o.token_sha256)) throw new Error('"token_sha256" is not 64 hex digits');
  if (o.delete_token_sha256 !== null && o.delete_token_sha256 !== undefined && !hex(o.delete_token_sha256)) {
    throw new Error('"delete_token_sha256" is not 64 hex digits or null');
  }
  if (o.quota !== null && o.quota !== undefined && !(Number.isSafeInteger(o.quota) && (o.quota as number) >= 0)) {
    throw new Error('"quota" is not a byte count or null');
  }
  return {
    name,
    tokenSha256: o.token_sha256 as string,
    deleteTokenSha256: (o.delete_token_sha256 as string | null | undefined) ?? null,
    quota: (o.quota as number | null | undefined) ?? null,
    appendOnly: o.append_only !== false,
    createdAt: typeof o.created_at === 'string' ? o.created_at : '1970-01-01T00:00:00.000Z',
  };
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r').catch(() => null);
  if (!fh) return;
  await fh.sync().catch(() => {});
  await fh.close();
}
