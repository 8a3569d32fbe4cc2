/**
 * One client's namespace on a storage node: the directory `[storage] path/<client>/`,
 * where object `a/b/c` is the file `a/b/c`. Writes stream into a temp file at the
 * namespace root (`.nj-tmp-…`, the LocalStore convention, so `LocalStore.removeTempFiles`
 * sweeps leftovers), are fsynced and digest-checked, and only then hard-linked to the
 * final name (link fails instead of overwriting: write-once even against racing uploads).
 * Names must already be validated (request-target.ts); every path is still checked to lie
 * inside the root as a second line of defence.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, promises as fsp, type Dirent } from 'node:fs';
import * as path from 'node:path';
import { RequestError } from './request-target.js';
import { fsyncDir } from '../store/local-store.js';

/** Bytes and object count a client stores (temp files excluded). */
export interface SpaceUsage {
  bytes: number;
  objects: number;
}

const TEMP_PREFIX = '.nj-tmp-';

/**
 * A client's objects. All methods may run concurrently. Usage is counted by one walk of
 * the directory on first need, then kept up to date by this object's writes and deletes
 * (the storage node is the only writer of the directory: the pid lock sees to that).
 */
export class ClientSpace {
  private usageScan: Promise<SpaceUsage> | null = null;
  /** Bytes of uploads in progress (reserved against the quota). */
  reservedBytes = 0;
  private readonly knownDirs = new Set<string>();

  constructor(readonly root: string) {}

  /** Current usage; the first call walks the directory. */
  usage(): Promise<SpaceUsage> {
    this.usageScan ??= scanUsage(this.root).catch((err) => {
      this.usageScan = null;
      throw err;
    });
    return this.usageScan;
  }

  /** Size of object `name`, or null when there is no such object. */
  async size(name: string): Promise<number | null> {
    try {
      const st = await fsp.stat(this.file(name));
      return st.isFile() ? st.size : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  /** An open handle on object `name` and its size, or null. The caller closes the handle. */
  async open(name: string): Promise<{ fh: fsp.FileHandle; size: number } | null> {
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(this.file(name), 'r');
    } catch (err) {
      if (isMissing(err) || (err as NodeJS.ErrnoException).code === 'EISDIR') return null;
      throw err;
    }
    const st = await fh.stat();
    if (!st.isFile()) {
      await fh.close();
      return null;
    }
    return { fh, size: st.size };
  }

  /**
   * Stores `body` (exactly `size` bytes whose SHA-256 must be `sha256Hex`) as `name`.
   * Throws RequestError 400 `digest_mismatch` or `incomplete_body`, 409 `exists`; the
   * body stream's own error when the upload is aborted. On any failure nothing is left
   * behind: no temp file, no new directory, no object.
   */
  async write(name: string, body: AsyncIterable<Buffer>, size: number, sha256Hex: string): Promise<void> {
    const usage = await this.usage(); // the first walk must not race with this write
    await this.ensureDir(this.root);
    const temp = path.join(this.root, TEMP_PREFIX + randomBytes(8).toString('hex'));
    let published = false;
    try {
      const fh = await fsp.open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
      const hash = createHash('sha256');
      let received = 0;
      try {
        for await (const chunk of body) {
          received += chunk.length;
          if (received > size) break;
          hash.update(chunk);
          await fh.write(chunk);
        }
        if (received !== size) {
          throw new RequestError(400, 'incomplete_body', `received ${received} bytes, Content-Length said ${size}`);
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      const actual = hash.digest('hex');
      if (actual !== sha256Hex.toLowerCase()) {
        throw new RequestError(400, 'digest_mismatch', `the body's SHA-256 is ${actual}, x-nightjar-sha256 said ${sha256Hex}; nothing was stored`);
      }
      const final = this.file(name);
      const dir = path.dirname(final);
      try {
        await this.ensureDir(dir);
        await fsp.link(temp, final);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST' || code === 'ENOTDIR') throw await this.conflict(name);
        throw err;
      }
      published = true;
      await fsp.unlink(temp);
      await fsyncDir(dir);
      usage.bytes += size;
      usage.objects += 1;
    } finally {
      if (!published) await fsp.unlink(temp).catch(() => {});
    }
  }

  /** The 409 for an existing `name`, carrying the existing object's SHA-256 when it is a file. */
  async conflict(name: string): Promise<RequestError> {
    const digest = await this.digest(name).catch(() => null);
    return new RequestError(
      409,
      'exists',
      digest === null
        ? `${name} conflicts with an existing object or directory (objects are write-once)`
        : `${name} already exists (objects are write-once)`,
      digest === null ? {} : { 'x-nightjar-existing-sha256': digest },
    );
  }

  /** Removes object `name`; false when it did not exist. */
  async delete(name: string): Promise<boolean> {
    const file = this.file(name);
    const usage = await this.usage();
    let size: number;
    try {
      const st = await fsp.lstat(file);
      if (!st.isFile()) return false;
      size = st.size;
      await fsp.unlink(file);
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
    await fsyncDir(path.dirname(file));
    usage.bytes -= size;
    usage.objects -= 1;
    return true;
  }

  /**
   * One page of the objects whose names start with `prefix`, in path order (segment by
   * segment, each sorted by byte value), beginning after the object `after`. `next` is
   * the cursor for the following page, or null when this page reached the end. Each page
   * reads only the directories on its way, so paging through n objects costs O(n) in all.
   */
  async listPage(prefix: string, after: string | null, limit: number): Promise<{ objects: Array<{ name: string; size: number }>; next: string | null }> {
    const objects: Array<{ name: string; size: number }> = [];
    const afterSegs = after === null ? null : after.split('/');
    const slash = prefix.lastIndexOf('/');
    const startSegs = slash >= 0 ? prefix.slice(0, slash).split('/') : [];

    const walk = async (segs: string[], cursorActive: boolean): Promise<boolean> => {
      let entries: Dirent[];
      try {
        entries = await fsp.readdir(path.join(this.root, ...segs), { withFileTypes: true });
      } catch (err) {
        if (isMissing(err)) return false;
        throw err;
      }
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) {
        if (e.name.startsWith('.')) continue;
        let active = cursorActive;
        if (active) {
          const c = afterSegs![segs.length];
          if (c === undefined || e.name > c) active = false;
          else if (e.name < c) continue;
        }
        const childSegs = [...segs, e.name];
        const name = childSegs.join('/');
        if (e.isDirectory()) {
          const dirName = name + '/';
          if (!(dirName.startsWith(prefix) || prefix.startsWith(dirName))) continue;
          if (await walk(childSegs, active)) return true;
        } else if (e.isFile()) {
          if (active || !name.startsWith(prefix)) continue; // `active` here: this is the cursor itself
          let size: number;
          try {
            size = (await fsp.stat(path.join(this.root, ...childSegs))).size;
          } catch (err) {
            if (isMissing(err)) continue; // deleted meanwhile
            throw err;
          }
          objects.push({ name, size });
          if (objects.length >= limit) return true;
        }
      }
      return false;
    };

    const full = await walk(startSegs, afterSegs !== null);
    return { objects, next: full ? objects[objects.length - 1]!.name : null };
  }

  private async digest(name: string): Promise<string | null> {
    const opened = await this.open(name);
    if (!opened) return null;
    try {
      const hash = createHash('sha256');
      for await (const chunk of opened.fh.createReadStream({ autoClose: false })) hash.update(chunk as Buffer);
      return hash.digest('hex');
    } finally {
      await opened.fh.close();
    }
  }

  private file(name: string): string {
    const file = path.join(this.root, ...name.split('/'));
    // Defence in depth: names are validated before they get here.
    if (!file.startsWith(this.root + path.sep)) throw new RequestError(400, 'invalid_name', 'object name leaves the namespace');
    return file;
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    const created = await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    if (created !== undefined) {
      // Make new directory entries durable: fsync each new directory's parent.
      for (let d = dir; d.length >= created.length && d !== path.dirname(d); d = path.dirname(d)) {
        await fsyncDir(path.dirname(d));
      }
    }
    this.knownDirs.add(dir);
  }
}

async function scanUsage(root: string): Promise<SpaceUsage> {
  const usage: SpaceUsage = { bytes: 0, objects: 0 };
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let entries: Dirent[];
    try {
      entries = await fsp.readdir(dir, { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) continue;
      throw err;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) {
        try {
          usage.bytes += (await fsp.stat(p)).size;
          usage.objects += 1;
        } catch (err) {
          if (!isMissing(err)) throw err;
        }
      }
    }
  }
  return usage;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

