import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { SPOOL_PREFIX } from '../store/store.js';
import { packTrailer, type PackEntry } from './pack.js';
import type { BlobType } from './types.js';

/** Blobs are gathered into writes of this size (one file write per many small blobs). */
const STAGING_BYTES = 1024 * 1024;
/**
 * Staging buffers whose write is done, kept for the next ones: a new buffer per MiB
 * written would be garbage that lives through its write, so reaches the old generation
 * and stays resident until a full collection (tens of MiB during a backup).
 */
const spareStaging: Buffer[] = [];
const SPARE_STAGING_MAX = 4;

/**
 * A pack built in a file rather than in memory (data packs: 16 MiB each, a few at once
 * while they upload): blobs are written at their offsets as they arrive, so a backup's
 * memory does not grow with the pack size. Small blobs are copied into a staging buffer
 * written out once full, so the main thread pays one write per MiB, not one per blob. The
 * file lives in a store's spool directory (then published without a copy: Store.spool)
 * or in the temp directory (then read back for the upload). Its name, the SHA-256 of its
 * bytes, is the caller's to compute from the finished file (in a worker thread: hashing
 * 16 MiB is no job for the main thread).
 */
export class PackFile {
  readonly type: BlobType;
  readonly path: string;
  private readonly handle: Promise<fsp.FileHandle>;
  private readonly entries: PackEntry[] = [];
  private readonly writes: Promise<void>[] = [];
  private staging: Buffer | null = null;
  /** File offset of staging[0]. */
  private stagingAt = 0;
  private stagingBytes = 0;
  private bytes = 0;

  constructor(type: BlobType, dir: string) {
    this.type = type;
    this.path = join(dir, `${SPOOL_PREFIX}pack-${randomBytes(8).toString('hex')}`);
    this.handle = fsp.open(this.path, 'wx+', 0o600);
    this.handle.catch(() => {}); // reported by the writes
  }

  get size(): number {
    return this.bytes;
  }

  get blobCount(): number {
    return this.entries.length;
  }

  /**
   * Appends a sealed blob (its offset is fixed now, in call order). `sealed` may be reused
   * once this returns when it was copied into the staging buffer (`written` undefined),
   * else (a large blob) once `written` resolves.
   */
  add(id: string, sealed: Uint8Array, rawLength: number, compressed: boolean): { entry: PackEntry; written: Promise<void> | undefined } {
    const entry: PackEntry = { id, type: this.type, offset: this.bytes, length: sealed.length, rawLength, compressed };
    this.entries.push(entry);
    this.bytes += sealed.length;
    if (sealed.length > STAGING_BYTES / 2) {
      this.writeStaging();
      return { entry, written: this.write(sealed, entry.offset) };
    }
    if (this.staging && this.stagingBytes + sealed.length > this.staging.length) this.writeStaging();
    if (!this.staging) {
      this.staging = spareStaging.pop() ?? Buffer.allocUnsafe(STAGING_BYTES);
      this.stagingAt = entry.offset;
    }
    this.staging.set(sealed, this.stagingBytes);
    this.stagingBytes += sealed.length;
    return { entry, written: undefined };
  }

  /** A blob's sealed bytes, read back (a blob saved and not uploaded yet). */
  async read(entry: PackEntry): Promise<Buffer> {
    this.writeStaging();
    await Promise.all(this.writes);
    const fh = await this.handle;
    const buf = Buffer.allocUnsafe(entry.length);
    let done = 0;
    while (done < entry.length) {
      const { bytesRead } = await fh.read(buf, done, entry.length - done, entry.offset + done);
      if (bytesRead === 0) throw new Error(`pack file ${this.path} is shorter than its blobs`);
      done += bytesRead;
    }
    return buf;
  }

  /** Writes what is left, then the trailer; returns the pack's size and entries. The file stays open (see close). */
  async finish(encKey: Buffer): Promise<{ size: number; entries: PackEntry[] }> {
    this.writeStaging();
    const trailer = packTrailer(encKey, this.entries);
    this.write(trailer, this.bytes);
    this.bytes += trailer.length;
    await Promise.all(this.writes);
    return { size: this.bytes, entries: this.entries };
  }

  /** The whole file (to upload it through Store.write). */
  async readAll(): Promise<Buffer> {
    return (await this.handle).readFile();
  }

  /** Closes the file (after reads in progress) and removes it unless it was published. */
  async close(): Promise<void> {
    try {
      await (await this.handle).close();
    } catch {
      // never opened: nothing to close
    }
    await fsp.unlink(this.path).catch(() => {});
  }

  /** Starts writing the staging buffer out (a new one is taken for the next blobs). */
  private writeStaging(): void {
    if (!this.staging || this.stagingBytes === 0) return;
    const staging = this.staging;
    const spare = () => {
      if (spareStaging.length < SPARE_STAGING_MAX) spareStaging.push(staging);
    };
    void this.write(staging.subarray(0, this.stagingBytes), this.stagingAt).then(spare, spare);
    this.staging = null;
    this.stagingBytes = 0;
  }

  private write(bytes: Uint8Array, offset: number): Promise<void> {
    const w = (async () => {
      const fh = await this.handle;
      for (let done = 0; done < bytes.length; ) {
        const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, offset + done);
        done += bytesWritten;
      }
    })();
    w.catch(() => {}); // finish reports it
    this.writes.push(w);
    return w;
  }
}
