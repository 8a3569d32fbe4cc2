import { createHash, type Hash } from 'node:crypto';
import { open, seal } from './crypto.js';
import { IntegrityError, RepoError } from './errors.js';
import { FLAG_COMPRESSED, FLAG_TREE, type BlobIndex } from './blob-index.js';
import type { BlobType } from './types.js';

/** One blob's entry in a pack header and in index objects. */
export interface PackEntry {
  id: string;
  type: BlobType;
  offset: number;
  /** Stored (sealed) length. */
  length: number;
  /** Plaintext length before compression. */
  rawLength: number;
  compressed: boolean;
}

/** Bytes of one serialized entry: type u8, flags u8, offset u32, length u32, rawLength u32, id 32. */
export const ENTRY_LEN = 46;
const HEADER_MAGIC = Buffer.from('NJPH');
const INDEX_MAGIC = Buffer.from('NJIX');
const FORMAT = 1;

export function writeEntry(buf: Buffer, pos: number, e: PackEntry): number {
  buf[pos] = e.type === 'tree' ? 1 : 0;
  buf[pos + 1] = e.compressed ? 1 : 0;
  buf.writeUInt32LE(e.offset, pos + 2);
  buf.writeUInt32LE(e.length, pos + 6);
  buf.writeUInt32LE(e.rawLength, pos + 10);
  const id = Buffer.from(e.id, 'hex');
  if (id.length !== 32) throw new RepoError(`bad blob id ${e.id}`);
  id.copy(buf, pos + 14);
  return pos + ENTRY_LEN;
}

export function readEntry(buf: Buffer, pos: number): PackEntry {
  const t = buf[pos]!;
  if (t > 1) throw new RepoError(`bad blob type ${t}`, 'NJ_REPO_FORMAT');
  return {
    type: t === 1 ? 'tree' : 'data',
    compressed: (buf[pos + 1]! & 1) === 1,
    offset: buf.readUInt32LE(pos + 2),
    length: buf.readUInt32LE(pos + 6),
    rawLength: buf.readUInt32LE(pos + 10),
    id: buf.toString('hex', pos + 14, pos + 46),
  };
}

/** The end of a pack after its blobs: the sealed header, then its sealed length as u32 LE (FORMAT.md "Packs"). */
export function packTrailer(encKey: Buffer, entries: readonly PackEntry[]): Buffer {
  const header = Buffer.alloc(9 + entries.length * ENTRY_LEN);
  HEADER_MAGIC.copy(header, 0);
  header[4] = FORMAT;
  header.writeUInt32LE(entries.length, 5);
  let pos = 9;
  for (const e of entries) pos = writeEntry(header, pos, e);
  const sealed = seal(encKey, header);
  const out = Buffer.allocUnsafe(sealed.length + 4);
  sealed.copy(out, 0);
  out.writeUInt32LE(sealed.length, sealed.length);
  return out;
}

/**
 * Accumulates sealed blobs into one pack in memory (tree packs: small): blobs back to
 * back, then the trailer. The pack's name is the SHA-256 of all its bytes, computed
 * incrementally. Data packs are built in files instead (pack-file.ts).
 */
export class PackBuilder {
  readonly type: BlobType;
  private buf: Buffer;
  private readonly entries: PackEntry[] = [];
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;

  constructor(type: BlobType, capacity = 256 * 1024) {
    this.type = type;
    this.buf = Buffer.allocUnsafe(capacity);
  }

  get size(): number {
    return this.bytes;
  }

  get blobCount(): number {
    return this.entries.length;
  }

  /** Appends a sealed blob; returns its entry and the pack's copy of the bytes (valid until finish). */
  add(id: string, sealed: Uint8Array, rawLength: number, compressed: boolean): { entry: PackEntry; stored: Buffer } {
    const e: PackEntry = { id, type: this.type, offset: this.bytes, length: sealed.length, rawLength, compressed };
    this.append(sealed);
    this.entries.push(e);
    return { entry: e, stored: this.buf.subarray(e.offset, e.offset + e.length) };
  }

  private append(bytes: Uint8Array): void {
    if (this.bytes + bytes.length > this.buf.length) {
      const bigger = Buffer.allocUnsafe(Math.max(this.bytes + bytes.length, Math.ceil(this.buf.length * 1.5)));
      this.buf.copy(bigger, 0, 0, this.bytes);
      this.buf = bigger;
    }
    this.buf.set(bytes, this.bytes);
    this.hash.update(bytes);
    this.bytes += bytes.length;
  }

  /** Appends the trailer and returns the complete pack, its name and its entries. */
  finish(encKey: Buffer): { name: string; data: Buffer; entries: PackEntry[] } {
    this.append(packTrailer(encKey, this.entries));
    return { name: this.hash.digest('hex'), data: this.buf.subarray(0, this.bytes), entries: this.entries };
  }
}

/** Parses a whole pack's header (check --read-data). Throws IntegrityError when damaged. */
export function readPackHeader(encKey: Buffer, pack: Buffer, what: string): PackEntry[] {
  if (pack.length < 4) throw new IntegrityError(`${what} (too short)`);
  const hlen = pack.readUInt32LE(pack.length - 4);
  if (hlen + 4 > pack.length) throw new IntegrityError(`${what} (bad header length)`);
  const header = open(encKey, pack.subarray(pack.length - 4 - hlen, pack.length - 4), `header of ${what}`);
  if (!header.subarray(0, 4).equals(HEADER_MAGIC) || header[4] !== FORMAT) throw new IntegrityError(`${what} (bad header magic)`);
  const n = header.readUInt32LE(5);
  if (header.length !== 9 + n * ENTRY_LEN) throw new IntegrityError(`${what} (bad header size)`);
  const out: PackEntry[] = [];
  for (let i = 0; i < n; i++) out.push(readEntry(header, 9 + i * ENTRY_LEN));
  return out;
}

/** A pack as recorded in an index object. */
export interface IndexedPack {
  name: string;
  size: number;
  entries: PackEntry[];
}

/** Serializes index plaintext: magic, version, pack count, then per pack: name(32), size u32, count u32, entries. */
export function encodeIndex(packs: IndexedPack[]): Buffer {
  let total = 9;
  for (const p of packs) total += 40 + p.entries.length * ENTRY_LEN;
  const buf = Buffer.alloc(total);
  INDEX_MAGIC.copy(buf, 0);
  buf[4] = FORMAT;
  buf.writeUInt32LE(packs.length, 5);
  let pos = 9;
  for (const p of packs) {
    Buffer.from(p.name, 'hex').copy(buf, pos);
    buf.writeUInt32LE(p.size, pos + 32);
    buf.writeUInt32LE(p.entries.length, pos + 36);
    pos += 40;
    for (const e of p.entries) pos = writeEntry(buf, pos, e);
  }
  return buf;
}

/**
 * Checks index plaintext whole (magic, version, lengths, blob types) before anything is
 * read from it; returns its number of entries. Throws RepoError (NJ_REPO_FORMAT).
 */
function checkIndex(buf: Buffer): number {
  if (buf.length < 9 || !buf.subarray(0, 4).equals(INDEX_MAGIC) || buf[4] !== FORMAT) {
    throw new RepoError('index object: bad magic or version', 'NJ_REPO_FORMAT');
  }
  const n = buf.readUInt32LE(5);
  let total = 0;
  for (let i = 0, pos = 9; i < n; i++) {
    if (pos + 40 > buf.length) throw new RepoError('index object truncated', 'NJ_REPO_FORMAT');
    const count = buf.readUInt32LE(pos + 36);
    total += count;
    pos += 40;
    if (pos + count * ENTRY_LEN > buf.length) throw new RepoError('index object truncated', 'NJ_REPO_FORMAT');
    for (let k = 0; k < count; k++, pos += ENTRY_LEN) if (buf[pos]! > 1) throw new RepoError(`bad blob type ${buf[pos]}`, 'NJ_REPO_FORMAT');
  }
  return total;
}

/** Parses index plaintext, calling `onPack` per pack. Throws RepoError on malformed input (before any call). */
export function decodeIndex(buf: Buffer, onPack: (name: string, size: number, entries: PackEntry[]) => void): void {
  checkIndex(buf);
  const n = buf.readUInt32LE(5);
  for (let i = 0, pos = 9; i < n; i++) {
    const name = buf.toString('hex', pos, pos + 32);
    const size = buf.readUInt32LE(pos + 32);
    const count = buf.readUInt32LE(pos + 36);
    pos += 40;
    const entries: PackEntry[] = [];
    for (let k = 0; k < count; k++, pos += ENTRY_LEN) entries.push(readEntry(buf, pos));
    onPack(name, size, entries);
  }
}

/**
 * decodeIndex straight into `index` (no entry objects, no hex strings: opening a
 * repository loads every index object). A malformed object adds nothing.
 */
export function loadIndexInto(buf: Buffer, index: BlobIndex): void {
  index.reserve(checkIndex(buf));
  const n = buf.readUInt32LE(5);
  for (let i = 0, pos = 9; i < n; i++) {
    const packNo = index.addPack(buf.toString('hex', pos, pos + 32), buf.readUInt32LE(pos + 32));
    const count = buf.readUInt32LE(pos + 36);
    pos += 40;
    for (let k = 0; k < count; k++, pos += ENTRY_LEN) {
      const flags = (buf[pos + 1]! & FLAG_COMPRESSED) | (buf[pos] === 1 ? FLAG_TREE : 0);
      index.addRaw(buf.subarray(pos + 14, pos + 46), packNo, buf.readUInt32LE(pos + 2), buf.readUInt32LE(pos + 6), buf.readUInt32LE(pos + 10), flags);
    }
  }
}

/** Store object name of a pack. */
export function packObjectName(pack: string): string {
  return `data/${pack.slice(0, 2)}/${pack}`;
}
