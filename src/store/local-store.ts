import { randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import {
  checkRange,
  NotFoundError,
  ObjectExistsError,
  payFor,
  SPOOL_PREFIX,
  StoreError,
  validateObjectName,
  validatePrefix,
  type ByteRange,
  type FileSpool,
  type ObjectInfo,
  type Store,
  type WriteOptions,
} from './store.js';


/** Objects kept open for range reads (a restore reads several packs at once). */
const MAX_READERS = 16;

/** An open object for range reads; closed once dropped and no read uses it. */
interface CachedReader {
  readonly open: Promise<{ fh: fsp.FileHandle; size: number }>;
  users: number;
  dropped: boolean;
}

function closeReader(r: CachedReader): void {
  r.open.then((x) => x.fh.close()).catch(() => {});
}

/** errno codes after which retrying the same call cannot help. */
const PERMANENT_ERRNO = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOSPC', 'EDQUOT', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG', 'ELOOP']);
/** errno codes of `link` on filesystems without hard links (FAT, exFAT, some FUSE/SMB mounts). */
const NO_LINK_ERRNO = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

/**
 * A Store in a local directory (`local:/path`, e.g. an external drive). Object `a/b/c`
 * is the file `<root>/a/b/c`.
 *
 * write: a temp file `.nj-tmp-<random>` in the target directory is created with 'wx',
 * written, fsynced and closed, then hard-linked to the final name (`link` fails with
 * EEXIST instead of overwriting, so of racing writers exactly one wins), the temp name
 * is unlinked and the directory fsynced. A kill leaves at most a temp file, which
 * `list` ignores and `removeTempFiles` deletes. On filesystems without hard links the
 * store falls back to "stat, then rename": atomic for readers, but write-once only
 * against writers in the same process.
 */
export class LocalStore implements Store {
  readonly location: string;
  readonly root: string;
  private readonly knownDirs = new Set<string>();
  private readonly localWrites = new Set<string>();
  private noHardLinks = false;
  /** Open handles for range reads (readRange), least recently used first. */
  private readonly readers = new Map<string, CachedReader>();
  /** Files prepared in the store's root are published by a link (or rename), not copied. */
  readonly spool: FileSpool;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.location = `local:${this.root}`;
    this.spool = {
      dir: this.root,
      adopt: (name, file, opts) => this.adopt(name, file, opts),
      cleanup: (olderThan) => this.removeTempFiles(olderThan),
    };
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    const slash = prefix.lastIndexOf('/');
    const baseRel = slash >= 0 ? prefix.slice(0, slash) : '';
    const stack: string[] = [baseRel];
    while (stack.length > 0) {
      const rel = stack.pop()!;
      let entries: import('node:fs').Dirent[];
      try {
        entries = await fsp.readdir(path.join(this.root, rel), { withFileTypes: true });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') continue;
        throw this.wrap(err, `list ${prefix}`);
      }
      for (const e of entries) {
        if (e.name.startsWith('.')) continue;
        const name = rel === '' ? e.name : `${rel}/${e.name}`;
        if (e.isDirectory()) {
          // Descend only where names can still match the prefix.
          if (prefix.startsWith(name + '/') || (name + '/').startsWith(prefix) || name.startsWith(prefix)) stack.push(name);
        } else if (e.isFile() && name.startsWith(prefix)) {
          try {
            const st = await fsp.stat(path.join(this.root, name));
            yield { name, size: st.size };
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted meanwhile
            throw this.wrap(err, `stat ${name}`);
          }
        }
      }
    }
  }

  async stat(name: string): Promise<ObjectInfo | null> {
    validateObjectName(name);
    try {
      const st = await fsp.stat(this.file(name));
      if (!st.isFile()) return null;
      return { name, size: st.size };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw this.wrap(err, `stat ${name}`);
    }
  }

  async read(name: string, range?: ByteRange): Promise<Buffer> {
    validateObjectName(name);
    if (range) return this.readRange(name, range);
    const { fh, size } = await this.openReader(name);
    try {
      return await this.readAt(fh, name, { offset: 0, length: size });
    } finally {
      await fh.close().catch(() => {});
    }
  }

  /** Reads range `r` of an open object in full. */
  private async readAt(fh: fsp.FileHandle, name: string, r: ByteRange): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(r.length);
    try {
      let done = 0;
      while (done < r.length) {
        const { bytesRead } = await fh.read(buf, done, r.length - done, r.offset + done);
        if (bytesRead === 0) throw new StoreError(`object ${name} in ${this.location} shrank while read`, { code: 'NJ_STORE_IO' });
        done += bytesRead;
      }
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw this.wrap(err, `read ${name}`);
    }
    return buf;
  }

  async write(name: string, data: Buffer, opts?: WriteOptions): Promise<void> {
    validateObjectName(name);
    const final = this.file(name);
    const dir = path.dirname(final);
    await this.ensureDir(dir);
    const temp = path.join(dir, SPOOL_PREFIX + randomBytes(8).toString('hex'));
    try {
      const fh = await fsp.open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
      try {
        let done = 0;
        while (done < data.length) {
          // Throttled (opts.pace): write slice by slice, each after the pacer allows it.
          const n = opts?.pace ? Math.max(1, Math.min(opts.pace.sliceBytes(), data.length - done)) : data.length - done;
          if (opts?.pace) await opts.pace.take(n);
          let sliceDone = 0;
          while (sliceDone < n) {
            const { bytesWritten } = await fh.write(data, done + sliceDone, n - sliceDone, done + sliceDone);
            sliceDone += bytesWritten;
          }
          done += n;
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      await this.publish(temp, final, name);
      await fsyncDir(dir);
    } catch (err) {
      await fsp.unlink(temp).catch(() => {});
      if (err instanceof StoreError) throw err;
      throw this.wrap(err, `write ${name}`);
    }
  }

  /** See FileSpool.adopt: fsync the prepared file, then publish it as write does. */
  private async adopt(name: string, file: string, opts?: WriteOptions): Promise<void> {
    validateObjectName(name);
    const final = this.file(name);
    const dir = path.dirname(final);
    try {
      const fh = await fsp.open(file, 'r');
      try {
        if (opts?.pace) await payFor(opts.pace, (await fh.stat()).size);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await this.ensureDir(dir);
      await this.publish(file, final, name);
      await fsyncDir(dir);
    } catch (err) {
      if (err instanceof StoreError) throw err;
      throw this.wrap(err, `write ${name}`);
    }
  }

  /**
   * A range read through a cached open handle: a restore reads many blobs from each pack,
   * and one pread each beats open, fstat, read and close each. Objects never change once
   * written, so a cached handle never reads stale bytes.
   */
  private async readRange(name: string, range: ByteRange): Promise<Buffer> {
    let reader = this.readers.get(name);
    if (reader) this.readers.delete(name); // most recently used last
    else {
      reader = { open: this.openReader(name), users: 0, dropped: false };
      for (const [old] of this.readers) {
        if (this.readers.size < MAX_READERS) break;
        this.dropReader(old);
      }
    }
    this.readers.set(name, reader);
    reader.users++;
    try {
      const { fh, size } = await reader.open;
      checkRange(this.location, name, range, size);
      return await this.readAt(fh, name, range);
    } catch (err) {
      if (this.readers.get(name) === reader) this.dropReader(name); // a failed open is not cached
      throw err;
    } finally {
      if (--reader.users === 0 && reader.dropped) closeReader(reader);
    }
  }

  private async openReader(name: string): Promise<{ fh: fsp.FileHandle; size: number }> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.file(name), 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') throw new NotFoundError(this.location, name);
      throw this.wrap(err, `open ${name}`);
    }
    try {
      return { fh, size: (await fh.stat()).size };
    } catch (err) {
      await fh.close().catch(() => {});
      throw this.wrap(err, `stat ${name}`);
    }
  }

  /** Forgets the cached handle of `name`; it closes once no read uses it (a deleted object's space is then freed). */
  private dropReader(name: string): void {
    const r = this.readers.get(name);
    if (!r) return;
    this.readers.delete(name);
    r.dropped = true;
    if (r.users === 0) closeReader(r);
  }

  async delete(name: string): Promise<void> {
    validateObjectName(name);
    this.dropReader(name);
    try {
      await fsp.unlink(this.file(name));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw this.wrap(err, `delete ${name}`);
    }
  }

  async close(): Promise<void> {
    for (const name of [...this.readers.keys()]) this.dropReader(name);
  }

  /**
   * Deletes temp files left by interrupted writes whose mtime is before `olderThan`
   * (pass a time well in the past, e.g. now − 1 h, so running writers are untouched).
   * Returns how many were removed.
   */
  async removeTempFiles(olderThan: Date): Promise<number> {
    let removed = 0;
    const stack = [this.root];
    while (stack.length > 0) {
      const dir = stack.pop()!;
      let entries: import('node:fs').Dirent[];
      try {
        entries = await fsp.readdir(dir, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const e of entries) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) stack.push(p);
        else if (e.name.startsWith(SPOOL_PREFIX)) {
          try {
            const st = await fsp.stat(p);
            if (st.mtime < olderThan) {
              await fsp.unlink(p);
              removed++;
            }
          } catch {
            /* gone meanwhile */
          }
        }
      }
    }
    return removed;
  }

  private async publish(temp: string, final: string, name: string): Promise<void> {
    if (!this.noHardLinks) {
      try {
        await fsp.link(temp, final);
        await fsp.unlink(temp);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw new ObjectExistsError(this.location, name);
        if (!code || !NO_LINK_ERRNO.has(code)) throw err;
        this.noHardLinks = true;
      }
    }
    // Fallback without hard links: serialize same-name writers of this process.
    if (this.localWrites.has(name) || (await this.stat(name))) throw new ObjectExistsError(this.location, name);
    this.localWrites.add(name);
    try {
      await fsp.rename(temp, final);
    } finally {
      this.localWrites.delete(name);
    }
  }

  private file(name: string): string {
    return path.join(this.root, ...name.split('/'));
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    try {
      const created = await fsp.mkdir(dir, { recursive: true });
      if (created !== undefined) {
        // Make the new directory entries durable: fsync each new dir's parent.
        let d = dir;
        while (d.length >= created.length && d !== path.dirname(d)) {
          await fsyncDir(path.dirname(d));
          d = path.dirname(d);
        }
      }
    } catch (err) {
      throw this.wrap(err, `mkdir ${dir}`);
    }
    this.knownDirs.add(dir);
  }

  private wrap(err: unknown, what: string): StoreError {
    const e = err as NodeJS.ErrnoException;
    const code = e?.code ?? 'UNKNOWN';
    return new StoreError(`${what} in ${this.location} failed: ${e?.message ?? String(err)}`, {
      code: 'NJ_STORE_IO',
      permanent: PERMANENT_ERRNO.has(code),
      cause: err,
    });
  }
}

/**
 * Makes a rename or link in `dir` durable. Filesystems that refuse fsync on directories
 * (EINVAL/EISDIR/EPERM/ENOTSUP) and a directory removed meanwhile (ENOENT) are not errors:
 * there is nothing more to make durable. Shared with the storage service.
 */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'ENOENT') throw err;
  } finally {
    await fh?.close().catch(() => {});
  }
}
