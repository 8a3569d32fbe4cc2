import type { BlobType } from './types.js';

/** Where a blob lives. */
export interface BlobLocation {
  pack: string;
  type: BlobType;
  offset: number;
  length: number;
  rawLength: number;
  compressed: boolean;
}

const ID_LEN = 32;
/** Flag bits (FLAG_COMPRESSED is also the entry flag bit in pack headers and index objects). */
export const FLAG_COMPRESSED = 1;
export const FLAG_TREE = 2;

/**
 * The in-memory index: blob id → pack, offset, length, raw length, flags. Kept compact
 * for millions of blobs: ids as raw bytes in one Uint8Array, fields in parallel typed
 * arrays, and an open-addressing hash table (linear probing, load ≤ 0.5) of Int32 slot
 * numbers keyed by the id's first 4 bytes (ids are HMAC outputs, so uniformly spread).
 * About 49 bytes per blob + 8 per table slot ≈ 60–70 bytes per blob; pack names are
 * stored once per pack. Not thread-safe (single event loop); the first entry of an id wins.
 */
export class BlobIndex {
  private ids = new Uint8Array(0);
  private packOf = new Uint32Array(0);
  private offsets = new Uint32Array(0);
  private lengths = new Uint32Array(0);
  private rawLengths = new Uint32Array(0);
  private flags = new Uint8Array(0);
  private table = new Int32Array(16).fill(-1);
  private count = 0;
  private readonly packNames: string[] = [];
  private readonly packNumbers = new Map<string, number>();
  private readonly packSizes: number[] = [];
  private readonly scratch = Buffer.alloc(ID_LEN);

  get size(): number {
    return this.count;
  }

  /** Pack names known to the index with their recorded sizes. */
  packs(): Map<string, number> {
    const out = new Map<string, number>();
    this.packNames.forEach((p, i) => out.set(p, this.packSizes[i]!));
    return out;
  }

  /** Recorded size of a pack (0 when unknown). */
  packSize(pack: string): number {
    const n = this.packNumbers.get(pack);
    return n === undefined ? 0 : this.packSizes[n]!;
  }

  hasPack(pack: string): boolean {
    return this.packNumbers.has(pack);
  }

  /** Registers a pack (idempotent); returns its number. */
  addPack(pack: string, size: number): number {
    let n = this.packNumbers.get(pack);
    if (n === undefined) {
      n = this.packNames.length;
      this.packNames.push(pack);
      this.packSizes.push(size);
      this.packNumbers.set(pack, n);
    }
    return n;
  }

  /** Adds a blob; returns false when the id is already present (kept as it was). */
  add(id: string | Uint8Array, loc: BlobLocation): boolean {
    const key = typeof id === 'string' ? Buffer.from(id, 'hex') : id;
    const flags = (loc.compressed ? FLAG_COMPRESSED : 0) | (loc.type === 'tree' ? FLAG_TREE : 0);
    return this.addRaw(key, this.addPack(loc.pack, 0), loc.offset, loc.length, loc.rawLength, flags);
  }

  /**
   * add() without objects or hex strings, for loading index objects: `packNo` from
   * addPack, `flags` as stored in index entries (bit 0 compressed), `tree` for the type.
   */
  addRaw(id: Uint8Array, packNo: number, offset: number, length: number, rawLength: number, flags: number): boolean {
    if (id.length !== ID_LEN) throw new Error(`blob id must be ${ID_LEN} bytes`);
    if (this.find(id) >= 0) return false;
    if (this.count >= this.packOf.length) this.grow();
    if ((this.count + 1) * 2 > this.table.length) this.rehash(this.table.length * 2);
    const i = this.count++;
    this.ids.set(id, i * ID_LEN);
    this.packOf[i] = packNo;
    this.offsets[i] = offset;
    this.lengths[i] = length;
    this.rawLengths[i] = rawLength;
    this.flags[i] = flags;
    this.insertSlot(i);
    return true;
  }

  has(id: string): boolean {
    return this.findHex(id) >= 0;
  }

  /** has() of the id in bytes buf[at, at + length) (no hex string made: a re-run checks every file's). */
  hasAt(buf: Uint8Array, at: number, length: number): boolean {
    return length === ID_LEN && at + ID_LEN <= buf.length && this.find(buf, at) >= 0;
  }

  get(id: string): BlobLocation | undefined {
    const i = this.findHex(id);
    return i < 0 ? undefined : this.at(i);
  }

  /** find() of a hex id, decoded into a scratch buffer (lookups are hot: every file of a re-run). */
  private findHex(id: string): number {
    if (id.length !== ID_LEN * 2 || this.scratch.write(id, 'hex') !== ID_LEN) return -1;
    return this.find(this.scratch);
  }

  /** Every blob (id hex + location), in insertion order. */
  *entries(): IterableIterator<[string, BlobLocation]> {
    for (let i = 0; i < this.count; i++) {
      yield [Buffer.from(this.ids.buffer, this.ids.byteOffset + i * ID_LEN, ID_LEN).toString('hex'), this.at(i)];
    }
  }

  /** Bytes held by the typed arrays (for memory estimates). */
  get byteSize(): number {
    return this.ids.byteLength + this.packOf.byteLength * 4 + this.flags.byteLength + this.table.byteLength;
  }

  private at(i: number): BlobLocation {
    const f = this.flags[i]!;
    return {
      pack: this.packNames[this.packOf[i]!]!,
      type: f & FLAG_TREE ? 'tree' : 'data',
      offset: this.offsets[i]!,
      length: this.lengths[i]!,
      rawLength: this.rawLengths[i]!,
      compressed: (f & FLAG_COMPRESSED) !== 0,
    };
  }

  private hashOf(key: Uint8Array, at: number): number {
    return (key[at]! | (key[at + 1]! << 8) | (key[at + 2]! << 16) | (key[at + 3]! << 24)) >>> 0;
  }

  /** The slot of the id in key[at, at + 32), or -1. */
  private find(key: Uint8Array, at = 0): number {
    const mask = this.table.length - 1;
    let s = this.hashOf(key, at) & mask;
    for (;;) {
      const i = this.table[s]!;
      if (i < 0) return -1;
      if (this.equalsAt(i, key, at)) return i;
      s = (s + 1) & mask;
    }
  }

  private equalsAt(i: number, key: Uint8Array, at: number): boolean {
    const ids = this.ids;
    const base = i * ID_LEN;
    for (let k = 0; k < ID_LEN; k++) if (ids[base + k] !== key[at + k]) return false;
    return true;
  }

  private insertSlot(i: number): void {
    const mask = this.table.length - 1;
    const base = i * ID_LEN;
    const ids = this.ids;
    let s = ((ids[base]! | (ids[base + 1]! << 8) | (ids[base + 2]! << 16) | (ids[base + 3]! << 24)) >>> 0) & mask;
    while (this.table[s]! >= 0) s = (s + 1) & mask;
    this.table[s] = i;
  }

  /** Makes room for `n` more blobs at once (loading an index object: no growing and rehashing step by step). */
  reserve(n: number): void {
    const want = this.count + n;
    if (want > this.packOf.length) this.grow(want);
    let size = this.table.length;
    while (want * 2 > size) size *= 2;
    if (size > this.table.length) this.rehash(size);
  }

  private grow(atLeast = 0): void {
    const cap = Math.max(1024, atLeast, Math.ceil(this.packOf.length * 1.5));
    const ids = new Uint8Array(cap * ID_LEN);
    ids.set(this.ids);
    this.ids = ids;
    const g32 = (a: Uint32Array) => {
      const b = new Uint32Array(cap);
      b.set(a);
      return b;
    };
    this.packOf = g32(this.packOf);
    this.offsets = g32(this.offsets);
    this.lengths = g32(this.lengths);
    this.rawLengths = g32(this.rawLengths);
    const f = new Uint8Array(cap);
    f.set(this.flags);
    this.flags = f;
  }

  private rehash(size: number): void {
    this.table = new Int32Array(size).fill(-1);
    for (let i = 0; i < this.count; i++) this.insertSlot(i);
  }
}
