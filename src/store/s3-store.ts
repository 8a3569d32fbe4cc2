import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type S3ClientConfig,
  type StorageClass,
} from '@aws-sdk/client-s3';
import type { Clock } from '../node/clock.js';
import type { TargetConfig } from '../node/config/types.js';
import { classifyS3Error, describeS3Failure } from './s3-errors.js';
import { paceOptions, UndiciHttpHandler } from './s3-http-handler.js';
import {
  checkRange,
  InvalidRangeError,
  NotFoundError,
  ObjectExistsError,
  StoreError,
  validateObjectName,
  validatePrefix,
  type ByteRange,
  type WriteOptions,
  type ObjectInfo,
  type Store,
} from './store.js';

const MiB = 1024 * 1024;

/** Tuning knobs; the defaults suit packs of a few MiB to a few hundred MiB. */
export interface S3Tuning {
  /**
   * Objects larger than this go up by multipart upload (default 16 MiB): below it one
   * PUT is cheaper; above it a failure costs one part, and parts go up in parallel.
   */
  readonly multipartThresholdBytes?: number;
  /** Size of each part but the last (default 8 MiB; S3's minimum is 5 MiB). */
  readonly partSizeBytes?: number;
  /** Parts uploaded at once within one object (default 4). */
  readonly partConcurrency?: number;
  /** MaxKeys per ListObjectsV2 page (default 1000, S3's maximum). */
  readonly listPageSize?: number;
}

export interface OpenS3StoreOptions extends S3Tuning {
  readonly clock: Clock;
  /** Where AWS_ACCESS_KEY_ID etc. are read when no key files are configured (default process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Idle limit of one HTTP request in ms (default 60 s): a request whose response
   * headers, or whose next body bytes, take longer is cut with a transient
   * NJ_STORE_TIMEOUT, which the retry decorator retries.
   */
  readonly requestTimeoutMs?: number;
}

/** How write-once is enforced on this server; found by probing at the first write. */
export type WriteOnceMode = 'if-none-match' | 'head-then-put';

interface S3StoreParts extends Required<S3Tuning> {
  readonly alias: string;
  readonly bucket: string;
  /** '' or a key prefix ending in '/'. */
  readonly keyPrefix: string;
  readonly location: string;
  readonly client: S3Client;
  readonly handler: UndiciHttpHandler;
  readonly clock: Clock;
  readonly storageClass: string | null;
}

/**
 * A Store on an S3-compatible object store: object `a/b` is the key `<prefix>/a/b` in
 * the bucket. Safe for concurrent use. No retries inside (the SDK's own retries are
 * off): every failure is classified once (see s3-errors.ts) and the retry decorator
 * (`withRetry`) stacked around this store decides.
 *
 * - Before its first operation the store lists one key of the prefix, so bad
 *   credentials, a missing bucket or an unknown host fail at once with a permanent
 *   error naming the alias (a HEAD in a missing bucket would just say 404).
 * - write-once: the first write probes whether the server honours `If-None-Match: *`
 *   (a PUT of a dot-named probe key that `list` never shows, written twice, then
 *   deleted). If it does, every PUT and CompleteMultipartUpload carries it, and 412
 *   becomes ObjectExistsError. If it answers 501 or ignores the header (Swift's s3api,
 *   s3rver, older MinIO/Ceph), the store falls back to HEAD-then-PUT, serialised per
 *   name inside this process; across processes a race can then let two writers both
 *   succeed, the last one winning (docs/S3.md explains why that is harmless for
 *   repository objects).
 * - Uploads carry Content-MD5, so the server rejects a body damaged on the way
 *   (BadDigest, transient) and Object Lock buckets accept the PUT.
 * - Reads compare the bytes received with Content-Length and Content-Range; a short
 *   body is a transient NJ_STORE_SHORT_READ, never returned as data.
 * - A write larger than `multipartThresholdBytes` uses multipart upload and aborts the
 *   upload on any failure, so no invisible parts are left billed (a kill -9 can still
 *   leave one; a bucket lifecycle rule cleans those, see docs/S3.md).
 */
export class S3Store implements Store {
  readonly location: string;
  private readonly p: S3StoreParts;
  private readyPromise: Promise<void> | null = null;
  private modePromise: Promise<WriteOnceMode> | null = null;
  /** In head-then-put mode: the tail of each name's chain of writes in this process. */
  private readonly writeChains = new Map<string, Promise<unknown>>();
  private closed = false;

  constructor(parts: S3StoreParts) {
    this.p = parts;
    this.location = parts.location;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    await this.ready();
    let token: string | undefined;
    do {
      const page = await this.call(
        () =>
          this.p.client.send(
            new ListObjectsV2Command({
              Bucket: this.p.bucket,
              Prefix: this.p.keyPrefix + prefix,
              MaxKeys: this.p.listPageSize,
              ...(token ? { ContinuationToken: token } : {}),
            }),
          ),
        `list ${prefix || '(all)'}`,
      );
      for (const o of page.Contents ?? []) {
        if (!o.Key?.startsWith(this.p.keyPrefix)) continue;
        const name = o.Key.slice(this.p.keyPrefix.length);
        if (!isObjectName(name)) continue; // probe keys, foreign objects, "folder" markers
        yield { name, size: o.Size ?? 0 };
      }
      if (page.IsTruncated && !page.NextContinuationToken) {
        throw new StoreError(`target "${this.p.alias}": ${this.location} sent a truncated listing without a continuation token`, {
          code: 'NJ_STORE_NETWORK',
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async stat(name: string): Promise<ObjectInfo | null> {
    validateObjectName(name);
    await this.ready();
    return this.head(name);
  }

  async read(name: string, range?: ByteRange): Promise<Buffer> {
    validateObjectName(name);
    if (range) checkRange(this.location, name, range, Number.MAX_SAFE_INTEGER);
    await this.ready();
    if (range && range.length === 0) {
      const info = await this.head(name);
      if (!info) throw new NotFoundError(this.location, name);
      checkRange(this.location, name, range, info.size);
      return Buffer.alloc(0);
    }
    let out;
    try {
      out = await this.p.client.send(
        new GetObjectCommand({
          Bucket: this.p.bucket,
          Key: this.key(name),
          ...(range ? { Range: `bytes=${range.offset}-${range.offset + range.length - 1}` } : {}),
        }),
      );
    } catch (err) {
      const f = describeS3Failure(err);
      if (f.code === 'NoSuchKey' || (f.status === 404 && f.code !== 'NoSuchBucket')) throw new NotFoundError(this.location, name);
      if (range && (f.status === 416 || f.code === 'InvalidRange')) {
        const info = await this.head(name);
        if (!info) throw new NotFoundError(this.location, name);
        checkRange(this.location, name, range, info.size);
      }
      throw this.fail(err, `read ${name}`);
    }
    const status = out.$metadata.httpStatusCode;
    const body = await this.collect(out.Body, name);
    if (out.ContentLength !== undefined && body.length !== out.ContentLength) {
      throw this.shortRead(name, body.length, out.ContentLength);
    }
    if (!range) return body;
    if (status === 206) {
      const cr = parseContentRange(out.ContentRange);
      if (!cr || cr.start !== range.offset) {
        throw new StoreError(`target "${this.p.alias}": ${this.location} answered read ${name} with range ${out.ContentRange ?? '(none)'}`, {
          code: 'NJ_STORE_NETWORK',
        });
      }
      if (cr.total !== null && range.offset + range.length > cr.total) {
        throw new InvalidRangeError(this.location, name, range, cr.total);
      }
      if (body.length !== range.length) throw this.shortRead(name, body.length, range.length);
      return body;
    }
    // 200: the server ignored Range and sent the whole object.
    checkRange(this.location, name, range, body.length);
    return Buffer.from(body.subarray(range.offset, range.offset + range.length));
  }

  async write(name: string, data: Buffer, opts?: WriteOptions): Promise<void> {
    validateObjectName(name);
    await this.ready();
    const mode = await this.writeOnceMode();
    // Throttled: the pacer rides along in the SDK's per-request handler options to
    // UndiciHttpHandler, which sends the body as paced slices (throttled-store.ts).
    const send = opts?.pace ? (paceOptions(opts.pace) as never) : undefined;
    if (mode === 'if-none-match') {
      const done = await this.upload(name, data, true, send);
      if (done) return;
      // The server refused the condition after all (e.g. only on multipart): fall back.
    }
    await this.serialised(name, async () => {
      if (await this.head(name)) throw new ObjectExistsError(this.location, name);
      await this.upload(name, data, false, send);
    });
  }

  async delete(name: string): Promise<void> {
    validateObjectName(name);
    await this.ready();
    try {
      await this.p.client.send(new DeleteObjectCommand({ Bucket: this.p.bucket, Key: this.key(name) }));
    } catch (err) {
      const f = describeS3Failure(err);
      if (f.code === 'NoSuchKey') return;
      throw this.fail(err, `delete ${name}`);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.p.client.destroy();
    await this.p.handler.close().catch(() => {});
  }

  /**
   * How this server gets write-once semantics: 'if-none-match' (enforced by the server)
   * or 'head-then-put' (the racy fallback). Probes at the first call; for diagnostics
   * and tests.
   */
  async writeOnceStrategy(): Promise<WriteOnceMode> {
    await this.ready();
    return this.writeOnceMode();
  }

  // ---- internals ----

  private key(name: string): string {
    return this.p.keyPrefix + name;
  }

  private fail(err: unknown, what: string): StoreError {
    return classifyS3Error(err, { alias: this.p.alias, location: this.location, what, nowMs: this.p.clock.nowMs() });
  }

  /** Runs one SDK call; any failure becomes a classified StoreError. */
  private async call<T>(fn: () => Promise<T>, what: string): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.fail(err, what);
    }
  }

  private shortRead(name: string, got: number, want: number): StoreError {
    return new StoreError(
      `target "${this.p.alias}": read ${name} on ${this.location} received ${got} of ${want} bytes, will retry`,
      { code: 'NJ_STORE_SHORT_READ', permanent: false },
    );
  }

  /** Lists one key once, so credentials, bucket and endpoint are known good. */
  private ready(): Promise<void> {
    if (this.closed) return Promise.reject(new StoreError(`${this.location} is closed`, { code: 'NJ_STORE_CLOSED', permanent: true }));
    this.readyPromise ??= this.call(
      () => this.p.client.send(new ListObjectsV2Command({ Bucket: this.p.bucket, Prefix: this.p.keyPrefix, MaxKeys: 1 })),
      'open',
    ).then(
      () => undefined,
      (err: unknown) => {
        this.readyPromise = null;
        throw err;
      },
    );
    return this.readyPromise;
  }

  private async head(name: string): Promise<ObjectInfo | null> {
    try {
      const out = await this.p.client.send(new HeadObjectCommand({ Bucket: this.p.bucket, Key: this.key(name) }));
      return { name, size: out.ContentLength ?? 0 };
    } catch (err) {
      const f = describeS3Failure(err);
      if (f.status === 404 && f.code !== 'NoSuchBucket') return null;
      throw this.fail(err, `stat ${name}`);
    }
  }

  private async collect(body: unknown, name: string): Promise<Buffer> {
    if (body === undefined || body === null) return Buffer.alloc(0);
    const chunks: Buffer[] = [];
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } catch (err) {
      (body as { destroy?: () => void }).destroy?.();
      throw this.fail(err, `read ${name}`);
    }
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  }

  /** Runs `fn` after every earlier write of `name` in this process has settled. */
  private async serialised(name: string, fn: () => Promise<void>): Promise<void> {
    const previous = this.writeChains.get(name) ?? Promise.resolve();
    const mine = previous.catch(() => {}).then(fn);
    this.writeChains.set(name, mine);
    try {
      await mine;
    } finally {
      if (this.writeChains.get(name) === mine) this.writeChains.delete(name);
    }
  }

  private writeOnceMode(): Promise<WriteOnceMode> {
    this.modePromise ??= this.probeWriteOnce().catch((err: unknown) => {
      this.modePromise = null;
      throw err;
    });
    return this.modePromise;
  }

  /**
   * PUT a fresh probe key with `If-None-Match: *` twice: 412 on the second means the
   * server enforces it; 501/NotImplemented or a second success means it does not.
   */
  private async probeWriteOnce(): Promise<WriteOnceMode> {
    const key = `${this.p.keyPrefix}.nj-probe-${randomBytes(8).toString('hex')}`;
    const put = () =>
      this.p.client.send(
        new PutObjectCommand({ Bucket: this.p.bucket, Key: key, Body: Buffer.alloc(0), IfNoneMatch: '*' }),
      );
    try {
      try {
        await put();
      } catch (err) {
        if (isNotImplemented(err)) return 'head-then-put';
        throw this.fail(err, 'probe conditional writes');
      }
      try {
        await put();
        return 'head-then-put'; // header ignored
      } catch (err) {
        const f = describeS3Failure(err);
        if (f.status === 412) return 'if-none-match';
        if (isNotImplemented(err)) return 'head-then-put';
        throw this.fail(err, 'probe conditional writes');
      }
    } finally {
      await this.p.client.send(new DeleteObjectCommand({ Bucket: this.p.bucket, Key: key })).catch(() => {});
    }
  }

  /**
   * Uploads `data` as `name`, conditionally when `ifNoneMatch`. Returns false when the
   * server refused the condition with 501 (the caller falls back), throws
   * ObjectExistsError on 412.
   */
  private async upload(name: string, data: Buffer, ifNoneMatch: boolean, send?: never): Promise<boolean> {
    if (data.length > this.p.multipartThresholdBytes) return this.uploadMultipart(name, data, ifNoneMatch, send);
    try {
      await this.p.client.send(
        new PutObjectCommand({
          Bucket: this.p.bucket,
          Key: this.key(name),
          Body: data,
          ContentLength: data.length,
          ContentMD5: md5(data),
          ContentType: 'application/octet-stream',
          ...(this.p.storageClass ? { StorageClass: this.p.storageClass as StorageClass } : {}),
          ...(ifNoneMatch ? { IfNoneMatch: '*' } : {}),
        }),
        send,
      );
      return true;
    } catch (err) {
      if (ifNoneMatch && describeS3Failure(err).status === 412) throw new ObjectExistsError(this.location, name);
      if (ifNoneMatch && isNotImplemented(err)) return false;
      throw this.fail(err, `write ${name}`);
    }
  }

  private async uploadMultipart(name: string, data: Buffer, ifNoneMatch: boolean, send?: never): Promise<boolean> {
    const Key = this.key(name);
    const created = await this.call(
      () =>
        this.p.client.send(
          new CreateMultipartUploadCommand({
            Bucket: this.p.bucket,
            Key,
            ContentType: 'application/octet-stream',
            ...(this.p.storageClass ? { StorageClass: this.p.storageClass as StorageClass } : {}),
          }),
        ),
      `write ${name} (start multipart upload)`,
    );
    const UploadId = created.UploadId;
    if (!UploadId) throw new StoreError(`target "${this.p.alias}": ${this.location} started a multipart upload without an id`, { code: 'NJ_STORE_NETWORK' });
    let completed = false;
    try {
      const partSize = Math.max(this.p.partSizeBytes, Math.ceil(data.length / 10_000));
      const count = Math.ceil(data.length / partSize);
      const parts: CompletedPart[] = new Array<CompletedPart>(count);
      let next = 0;
      const worker = async () => {
        while (next < count) {
          const i = next++;
          const body = data.subarray(i * partSize, Math.min(data.length, (i + 1) * partSize));
          const out = await this.call(
            () =>
              this.p.client.send(
                new UploadPartCommand({
                  Bucket: this.p.bucket,
                  Key,
                  UploadId,
                  PartNumber: i + 1,
                  Body: body,
                  ContentLength: body.length,
                  ContentMD5: md5(body),
                }),
                send,
              ),
            `write ${name} (part ${i + 1} of ${count})`,
          );
          parts[i] = { PartNumber: i + 1, ETag: out.ETag };
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.p.partConcurrency, count) }, worker));
      try {
        await this.p.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.p.bucket,
            Key,
            UploadId,
            MultipartUpload: { Parts: parts },
            ...(ifNoneMatch ? { IfNoneMatch: '*' } : {}),
          }),
        );
      } catch (err) {
        if (ifNoneMatch && describeS3Failure(err).status === 412) throw new ObjectExistsError(this.location, name);
        if (ifNoneMatch && isNotImplemented(err)) return false;
        throw this.fail(err, `write ${name} (complete multipart upload)`);
      }
      completed = true;
      return true;
    } finally {
      if (!completed) {
        await this.p.client
          .send(new AbortMultipartUploadCommand({ Bucket: this.p.bucket, Key, UploadId }))
          .catch(() => {});
      }
    }
  }
}

function isObjectName(name: string): boolean {
  try {
    validateObjectName(name);
    return true;
  } catch {
    return false;
  }
}

function isNotImplemented(err: unknown): boolean {
  const f = describeS3Failure(err);
  return f.status === 501 || f.code === 'NotImplemented';
}

function md5(data: Buffer): string {
  return createHash('md5').update(data).digest('base64');
}

/** `bytes 10-109/4096` → {start, end, total}; total null for `*`. */
function parseContentRange(value: string | undefined): { start: number; end: number; total: number | null } | null {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value?.trim() ?? '');
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? null : Number(m[3]) };
}

/** A StoreError about the target's configuration (permanent). */
function configError(alias: string, text: string, cause?: unknown): StoreError {
  return new StoreError(`target "${alias}": ${text}`, { code: 'NJ_STORE_CONFIG', permanent: true, cause });
}

async function readKeyFile(alias: string, what: string, file: string): Promise<string> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw configError(alias, `cannot read ${what} ${file}: ${(err as Error).message}`, err);
  }
  const value = text.trim();
  if (!value) throw configError(alias, `${what} ${file} is empty`);
  return value;
}

/** Splits `bucket/prefix` (an `s3://` in front is tolerated) into bucket and key prefix. */
export function parseS3Location(location: string): { bucket: string; keyPrefix: string } {
  const rest = location.replace(/^s3:\/\//, '');
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '');
  return { bucket, keyPrefix: prefix ? `${prefix}/` : '' };
}

/**
 * Opens the store of an `s3://bucket/prefix` target. Does no network I/O: the first
 * operation checks credentials and bucket (see S3Store). Credentials come from
 * `access_key_file` + `secret_key_file` (first line of each), else from
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) in `env`. Region:
 * `region`, else AWS_REGION / AWS_DEFAULT_REGION, else us-east-1. Requests go through
 * undici (see s3-http-handler.ts). The result is the bare store: stack `withRetry`
 * (and throttling) around it. Rejects with a permanent StoreError (NJ_STORE_CONFIG)
 * naming the alias when the target is not usable as configured.
 */
export async function openS3Store(
  target: TargetConfig,
  opts: OpenS3StoreOptions,
): Promise<S3Store> {
  const alias = target.alias;
  if (target.kind !== 's3') throw configError(alias, `is a ${target.kind} target, not s3`);
  const env = opts.env ?? process.env;
  const { bucket, keyPrefix } = parseS3Location(target.location);
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/.test(bucket)) {
    throw configError(alias, `${JSON.stringify(bucket)} is not a bucket name (s3://bucket/prefix)`);
  }
  if (keyPrefix) {
    try {
      validatePrefix(keyPrefix);
    } catch {
      throw configError(alias, `prefix ${JSON.stringify(keyPrefix)} may only hold segments of [A-Za-z0-9._-] not starting with a dot`);
    }
  }

  let accessKeyId: string;
  let secretAccessKey: string;
  let sessionToken: string | undefined;
  if (target.accessKeyFile || target.secretKeyFile) {
    if (!target.accessKeyFile || !target.secretKeyFile) {
      throw configError(alias, 'access_key_file and secret_key_file must be set together');
    }
    accessKeyId = await readKeyFile(alias, 'access_key_file', target.accessKeyFile);
    secretAccessKey = await readKeyFile(alias, 'secret_key_file', target.secretKeyFile);
  } else if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY) {
    accessKeyId = env.AWS_ACCESS_KEY_ID;
    secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
    sessionToken = env.AWS_SESSION_TOKEN || undefined;
  } else {
    throw configError(alias, 'no S3 credentials: set access_key_file and secret_key_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  }

  const region = target.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1';
  let endpoint: string | undefined;
  let where: string;
  if (target.endpoint) {
    const raw = /^[a-z][a-z0-9+.-]*:\/\//i.test(target.endpoint) ? target.endpoint : `https://${target.endpoint}`;
    let url: URL;
    try {
      url = new URL(raw);
    } catch (err) {
      throw configError(alias, `endpoint ${JSON.stringify(target.endpoint)} is not a URL`, err);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw configError(alias, `endpoint must be http(s), not ${url.protocol}`);
    url.username = '';
    url.password = '';
    endpoint = url.href.replace(/\/$/, '');
    where = endpoint;
  } else {
    where = `AWS S3 ${region}`;
  }
  const location = `s3://${bucket}/${keyPrefix.replace(/\/$/, '')} at ${where}`;

  const requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
  const handler = new UndiciHttpHandler({ requestTimeoutMs });
  const config: S3ClientConfig = {
    region,
    ...(endpoint ? { endpoint } : {}),
    forcePathStyle: target.pathStyle,
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
    // Swift's s3api (and other S3 look-alikes) cannot take aws-chunked bodies with
    // trailing CRC checksums; integrity of uploads comes from Content-MD5 instead.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // One retry layer only: withRetry around the store.
    maxAttempts: 1,
    // undici does not do `Expect: 100-continue`.
    expectContinueHeader: false,
    requestHandler: handler as unknown as S3ClientConfig['requestHandler'],
  };
  return new S3Store({
    alias,
    bucket,
    keyPrefix,
    location,
    client: newClient(config),
    handler,
    clock: opts.clock,
    storageClass: target.storageClass,
    multipartThresholdBytes: opts.multipartThresholdBytes ?? 16 * MiB,
    partSizeBytes: opts.partSizeBytes ?? 8 * MiB,
    partConcurrency: opts.partConcurrency ?? 4,
    listPageSize: opts.listPageSize ?? 1000,
  });
}

/**
 * Creates the client without the SDK's "versions after January 2027 need Node 22"
 * warning: the SDK is pinned (package.json) to a release that supports Node 20.
 */
function newClient(config: S3ClientConfig): S3Client {
  const key = 'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED';
  const before = process.env[key];
  process.env[key] = 'true';
  try {
    return new S3Client(config);
  } finally {
    if (before === undefined) delete process.env[key];
    else process.env[key] = before;
  }
}
