import { RepoError } from './errors.js';
import type { EntryType, Tree, TreeEntry } from './types.js';

const TYPES = new Set<EntryType>(['file', 'dir', 'symlink', 'fifo', 'socket', 'chardev', 'blockdev']);

/** Bytes as a JSON string when they are valid UTF-8 that round-trips, else null. */
function utf8OrNull(b: Buffer): string | null {
  const s = b.toString('utf8');
  return Buffer.byteLength(s, 'utf8') === b.length && Buffer.from(s, 'utf8').equals(b) ? s : null;
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
