import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { SPOOL_PREFIX } from '../store/store.js';
import { packTrailer, type PackEntry } from './pack.js';
import type { BlobType } from './types.js';

/**
 * A pack built in a file rather than in memory (data packs: 16 MiB each, a few at once
 * while they upload): blobs are written at their offsets as they arrive, so a backup's
 * memory does not grow with the pack size. The file lives in a store's spool directory
 * (then published without a copy: Store.spool) or in the temp directory (then read back
 * for the upload). Its name, the SHA-256 of its bytes, is the caller's to compute from
 * the finished file (in a worker thread: hashing 16 MiB is no job for the main thread).
 */
export class PackFile {
  readonly type: BlobType;
  readonly path: string;
  private readonly handle: Promise<fsp.FileHandle>;
  private readonly entries: PackEntry[] = [];
  private readonly writes: Promise<void>[] = [];
  private bytes = 0;

  constructor(type: BlobType, dir: string) {
    this.type = type;
    this.path = join(dir, `${SPOOL_PREFIX}pack-${randomBytes(8).toString('hex')}`);
    this.handle = fsp.open(this.path, 'wx+', 0o600);
    this.handle.catch(() => {}); // reported by the first add's promise
  }

  get size(): number {
    return this.bytes;
  }

  get blobCount(): number {
    return this.entries.length;
  }

  /**
   * Appends a sealed blob (its offset is fixed now, in call order). `written` resolves
   * once the bytes are in the file: `sealed` must stay unchanged until then.
   */
  add(id: string, sealed: Uint8Array, rawLength: number, compressed: boolean): { entry: PackEntry; written: Promise<void> } {
    const entry: PackEntry = { id, type: this.type, offset: this.bytes, length: sealed.length, rawLength, compressed };
    this.entries.push(entry);
    const written = this.writeAt(sealed, entry.offset);
    this.writes.push(written);
    written.catch(() => {}); // finish reports it
    return { entry, written };
  }

  /** A blob's sealed bytes, read back from the file (a blob saved and not uploaded yet). */
  async read(entry: PackEntry, written: Promise<void>): Promise<Buffer> {
    await written;
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

  /** Waits for every blob, appends the trailer; returns the pack's size and entries. The file stays open (see close). */
  async finish(encKey: Buffer): Promise<{ size: number; entries: PackEntry[] }> {
    await Promise.all(this.writes);
    await this.writeAt(packTrailer(encKey, this.entries), this.bytes);
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

  private async writeAt(bytes: Uint8Array, offset: number): Promise<void> {
    this.bytes = Math.max(this.bytes, offset + bytes.length);
    const fh = await this.handle;
    let done = 0;
    while (done < bytes.length) {
      const { bytesWritten } = await fh.write(bytes, done, bytes.length - done, offset + done);
      done += bytesWritten;
    }
  }
}
