import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { RepoError } from './errors.js';
import type { EntryType, Tree, TreeEntry } from './types.js';

const TYPES = new Set<EntryType>(['file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev']);

/** Bytes as a JSON string when they are valid UTF-8 (which decodes and encodes back to the same bytes), else null. */
function utf8OrNull(b: Buffer): string | null {
  return isUtf8(b) ? b.toString('utf8') : null;
}

/** Sorts entries by name bytes (in place) and refuses duplicate or invalid names. */
export function sortEntries(entries: TreeEntry[]): TreeEntry[] {
  entries.sort((a, b) => Buffer.compare(a.name, b.name));
  for (let i = 0; i < entries.length; i++) {
    const n = entries[i]!.name;
    if (n.length === 0 || n.includes(0x2f) || n.includes(0) || (n.length <= 2 && (n.toString() === '.' || n.toString() === '..'))) {
      throw new RepoError(`invalid entry name ${JSON.stringify(n.toString('utf8'))}`, 'NJ_REPO_BAD_TREE');
    }
    if (i > 0 && entries[i - 1]!.name.equals(n)) {
      throw new RepoError(`duplicate entry name ${JSON.stringify(n.toString('utf8'))}`, 'NJ_REPO_BAD_TREE');
    }
  }
  return entries;
}

/**
 * Serializes a tree as JSON (FORMAT.md "Trees"), deterministic: sorted entries, fixed key
 * order. Names and link targets that are valid UTF-8 are strings (`name`, `link`), others
 * base64 (`nameB64`, `linkB64`); bigints are decimal strings.
 */
export function encodeTree(tree: Tree): Buffer {
  const entries = sortEntries([...tree.entries]);
  const out = entries.map((e) => {
    const o: Record<string, unknown> = {};
    const n = utf8OrNull(e.name);
    if (n !== null) o.name = n;
    else o.nameB64 = e.name.toString('base64');
    o.type = e.type;
    o.mode = e.mode;
    o.uid = e.uid;
    o.gid = e.gid;
    o.mtime = e.mtimeNs.toString();
    if (e.atimeNs !== undefined) o.atime = e.atimeNs.toString();
    o.ctime = e.ctimeNs.toString();
    o.size = e.size;
    o.inode = e.inode.toString();
    o.dev = e.dev.toString();
    o.nlink = e.nlink;
    if (e.rdev !== undefined) o.rdev = e.rdev;
    if (e.content !== undefined) o.content = e.content;
    if (e.subtree !== undefined) o.subtree = e.subtree;
    if (e.linkTarget !== undefined) {
      const l = utf8OrNull(e.linkTarget);
      if (l !== null) o.link = l;
      else o.linkB64 = e.linkTarget.toString('base64');
    }
    return o;
  });
  return Buffer.from(JSON.stringify({ v: 1, entries: out }), 'utf8');
}

function big(v: unknown, what: string): bigint {
  if (typeof v !== 'string' || !/^-?\d+$/.test(v)) throw new RepoError(`tree: bad ${what}`, 'NJ_REPO_BAD_TREE');
  return BigInt(v);
}

function num(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new RepoError(`tree: bad ${what}`, 'NJ_REPO_BAD_TREE');
  return v;
}

/** Parses encodeTree's output; throws RepoError (NJ_REPO_BAD_TREE) when malformed. */
export function decodeTree(buf: Buffer): Tree {
  let doc: { v?: unknown; entries?: unknown };
  try {
    doc = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new RepoError('tree: not JSON', 'NJ_REPO_BAD_TREE');
  }
  if (doc.v !== 1 || !Array.isArray(doc.entries)) throw new RepoError('tree: bad version or entries', 'NJ_REPO_BAD_TREE');
  const entries = doc.entries.map((raw: Record<string, unknown>) => {
    const name =
      typeof raw.name === 'string' ? Buffer.from(raw.name, 'utf8') : typeof raw.nameB64 === 'string' ? Buffer.from(raw.nameB64, 'base64') : null;
    if (!name) throw new RepoError('tree: entry without name', 'NJ_REPO_BAD_TREE');
    if (!TYPES.has(raw.type as EntryType)) throw new RepoError(`tree: bad type ${String(raw.type)}`, 'NJ_REPO_BAD_TREE');
    const e: TreeEntry = {
      name,
      type: raw.type as EntryType,
      mode: num(raw.mode, 'mode'),
      uid: num(raw.uid, 'uid'),
      gid: num(raw.gid, 'gid'),
      mtimeNs: big(raw.mtime, 'mtime'),
      ctimeNs: big(raw.ctime, 'ctime'),
      size: num(raw.size, 'size'),
      inode: big(raw.inode, 'inode'),
      dev: big(raw.dev, 'dev'),
      nlink: num(raw.nlink, 'nlink'),
    };
    if (raw.atime !== undefined) e.atimeNs = big(raw.atime, 'atime');
    if (raw.rdev !== undefined) e.rdev = num(raw.rdev, 'rdev');
    if (raw.content !== undefined) {
      if (!Array.isArray(raw.content) || !raw.content.every((c) => typeof c === 'string')) {
        throw new RepoError('tree: bad content', 'NJ_REPO_BAD_TREE');
      }
      e.content = raw.content as string[];
    }
    if (raw.subtree !== undefined) {
      if (typeof raw.subtree !== 'string') throw new RepoError('tree: bad subtree', 'NJ_REPO_BAD_TREE');
      e.subtree = raw.subtree;
    }
    if (typeof raw.link === 'string') e.linkTarget = Buffer.from(raw.link, 'utf8');
    else if (typeof raw.linkB64 === 'string') e.linkTarget = Buffer.from(raw.linkB64, 'base64');
    return e;
  });
  return { entries };
}

/**
 * True when two entry lists (each sorted by name, as encodeTree writes them) would
 * serialize to the same bytes: then a tree equal to a stored one need not be encoded and
 * hashed again, its id is the stored tree's.
 */
export function sameEntries(a: readonly TreeEntry[], b: readonly TreeEntry[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (
      x.type !== y.type ||
      x.mode !== y.mode ||
      x.uid !== y.uid ||
      x.gid !== y.gid ||
      x.size !== y.size ||
      x.nlink !== y.nlink ||
      x.rdev !== y.rdev ||
      x.subtree !== y.subtree ||
      x.mtimeNs !== y.mtimeNs ||
      x.atimeNs !== y.atimeNs ||
      x.ctimeNs !== y.ctimeNs ||
      x.inode !== y.inode ||
      x.dev !== y.dev ||
      !x.name.equals(y.name)
    ) {
      return false;
    }
    if (x.linkTarget !== y.linkTarget && (!x.linkTarget || !y.linkTarget || !x.linkTarget.equals(y.linkTarget))) return false;
    if (x.content !== y.content) {
      if (!x.content || !y.content || x.content.length !== y.content.length) return false;
      for (let k = 0; k < x.content.length; k++) if (x.content[k] !== y.content[k]) return false;
    }
  }
  return true;
}

/** Scratch space of entriesDigest, kept between calls (grown on demand), with typed views for the fixed fields. */
let scratch = Buffer.allocUnsafeSlow(64 * 1024); // not pooled: offset 0, so 8-byte views fit
let f64 = new Float64Array(scratch.buffer, scratch.byteOffset, scratch.length >>> 3);
let i64 = new BigInt64Array(scratch.buffer, scratch.byteOffset, scratch.length >>> 3);
let u64 = new BigUint64Array(scratch.buffer, scratch.byteOffset, scratch.length >>> 3);
const I64_MIN = -(2n ** 63n);
const I64_MAX = 2n ** 63n - 1n;
const U64_MAX = 2n ** 64n - 1n;
const TYPE_CODE: Record<EntryType, number> = { file: 1, dir: 2, symlink: 3, fifo: 4, socket: 5, chardev: 6, blockdev: 7 };

let pos = 0;

function room(n: number): void {
  if (pos + n <= scratch.length) return;
  const next = Buffer.allocUnsafeSlow(Math.max(scratch.length * 2, pos + n + 8));
  scratch.copy(next, 0, 0, pos);
  scratch = next;
  f64 = new Float64Array(scratch.buffer, scratch.byteOffset, scratch.length >>> 3);
  i64 = new BigInt64Array(scratch.buffer, scratch.byteOffset, scratch.length >>> 3);
  u64 = new BigUint64Array(scratch.buffer, scratch.byteOffset, scratch.length >>> 3);
}

function putU32(n: number): void {
  room(4);
  pos = scratch.writeUInt32LE(n >>> 0, pos);
}

function putStr(s: string): void {
  room(4 + 3 * s.length);
  const n = scratch.write(s, pos + 4, 'utf8');
  scratch.writeUInt32LE(n, pos);
  pos += 4 + n;
}

function putBytes(b: Buffer): void {
  putU32(b.length);
  room(b.length);
  pos += b.copy(scratch, pos);
}

/** One entry's fields, as TreeEntry has them (the file fast path passes them without building one). */
function putEntry(
  name: Buffer,
  type: EntryType,
  mode: number,
  uid: number,
  gid: number,
  mtimeNs: bigint,
  ctimeNs: bigint,
  size: number,
  inode: bigint,
  dev: bigint,
  nlink: number,
  e: Pick<TreeEntry, 'atimeNs' | 'rdev' | 'content' | 'subtree' | 'linkTarget'>,
): void {
  // Fixed part, 8-byte aligned: numbers as doubles (exact), bigints in 64-bit slots.
  room(88);
  while ((pos & 7) !== 0) scratch[pos++] = 0; // the scratch is reused: padding must not carry old bytes
  const w = pos >>> 3;
  f64[w] = mode;
  f64[w + 1] = uid;
  f64[w + 2] = gid;
  f64[w + 3] = size;
  f64[w + 4] = nlink;
  f64[w + 5] = e.rdev ?? -1;
  i64[w + 6] = mtimeNs;
  i64[w + 7] = ctimeNs;
  u64[w + 8] = inode;
  u64[w + 9] = dev;
  pos += 80;
  const wide =
    (mtimeNs < I64_MIN || mtimeNs > I64_MAX ? 1 : 0) |
    (ctimeNs < I64_MIN || ctimeNs > I64_MAX ? 2 : 0) |
    (inode < 0n || inode > U64_MAX ? 4 : 0) |
    (dev < 0n || dev > U64_MAX ? 8 : 0);
  room(3);
  scratch[pos++] = TYPE_CODE[type] ?? 0;
  scratch[pos++] = wide;
  // Presence bits, so absent and empty never collide.
  scratch[pos++] =
    (e.atimeNs !== undefined ? 1 : 0) |
    (e.rdev !== undefined ? 2 : 0) |
    (e.content !== undefined ? 4 : 0) |
    (e.subtree !== undefined ? 8 : 0) |
    (e.linkTarget !== undefined ? 16 : 0);
  if (wide !== 0) for (const v of [mtimeNs, ctimeNs, inode, dev]) putStr(v.toString());
  putBytes(name);
  if (e.atimeNs !== undefined) putStr(e.atimeNs.toString());
  if (e.content !== undefined) {
    putU32(e.content.length);
    for (const c of e.content) putStr(c);
  }
  if (e.subtree !== undefined) putStr(e.subtree);
  if (e.linkTarget !== undefined) putBytes(e.linkTarget);
}

/** What addFile needs of an lstat result (EntryStat fits). */
export interface DigestStat {
  readonly mode: bigint;
  readonly uid: bigint;
  readonly gid: bigint;
  readonly size: bigint;
  readonly nlink: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  readonly ino: bigint;
  readonly dev: bigint;
}

/**
 * A SHA-256 over every field encodeTree writes, for entries in encodeTree's order (sorted
 * by name bytes). Two entry lists with equal digests encode to the same bytes, so a tree
 * id stored beside a digest can be reused without loading the tree it names. Much cheaper
 * than encoding (no JSON, no bigint strings); the bytes are not a stored format, but the
 * mapping must stay injective: every variable part has its length, every optional part a
 * presence bit, and a bigint that does not fit its 64-bit slot is also written in decimal.
 *
 * Entries are added one by one; one digest at a time (they share a scratch buffer), from
 * `start` to `digest` without an await in between.
 */
export class EntriesDigest {
  private count = 0;

  constructor() {
    pos = 0;
  }

  add(e: TreeEntry): this {
    this.count++;
    putEntry(e.name, e.type, e.mode, e.uid, e.gid, e.mtimeNs, e.ctimeNs, e.size, e.inode, e.dev, e.nlink, e);
    return this;
  }

  /** Same bytes as add() of the entry backup-run's entryFromStat builds for a regular file with this content. */
  addFile(name: Buffer, st: DigestStat, content: string[]): this {
    this.count++;
    const n = Number;
    putEntry(name, 'file', n(st.mode), n(st.uid), n(st.gid), st.mtimeNs, st.ctimeNs, n(st.size), st.ino, st.dev, n(st.nlink), { content });
    return this;
  }

  digest(): Buffer {
    putU32(this.count);
    return createHash('sha256').update(scratch.subarray(0, pos)).digest();
  }
}

/** EntriesDigest of a whole list. */
export function entriesDigest(entries: readonly TreeEntry[]): Buffer {
  const d = new EntriesDigest();
  for (const e of entries) d.add(e);
  return d.digest();
}
