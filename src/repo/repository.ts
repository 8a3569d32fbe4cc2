import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import type { Clock } from '../node/clock.js';
import { NotFoundError, ObjectExistsError, type Store } from '../store/store.js';
import { BlobIndex } from './blob-index.js';
import { Chunker, DEFAULT_CHUNKER, gearTable, type ChunkerParams } from './chunker.js';
import { decompress, decompressSync, maybeCompress, maybeCompressSync } from './compress.js';
import {
  blobId,
  DEFAULT_KDF,
  deriveKey,
  generateMasterKeys,
  open,
  seal,
  sha256Hex,
  type KdfParams,
  type MasterKeys,
} from './crypto.js';
import {
  BlobNotFoundError,
  IntegrityError,
  RepoError,
  RepoExistsError,
  RepoNotFoundError,
  SnapshotNotFoundError,
  UnsupportedFormatError,
  WrongPassphraseError,
} from './errors.js';
import { acquireLock } from './lock.js';
import { encodeIndex, ENTRY_LEN, loadIndexInto, packObjectName, PackBuilder, readPackHeader, type IndexedPack, type PackEntry } from './pack.js';
import { PackFile } from './pack-file.js';
import { decodeTree, encodeTree } from './tree-codec.js';
import type {
  CheckProblem,
  CheckReport,
  RawListing,
  RepoLock,
  SaveFileOptions,
  SaveFileResult,
  Snapshot,
  SnapshotInput,
  Tree,
} from './types.js';
import { WorkerPool } from './worker-pool.js';

export const FORMAT_VERSION = 1;
/** Default pack size: 16 MiB (FORMAT.md "Packs"). */
export const DEFAULT_PACK_SIZE = 16 * 1024 * 1024;
/** Tree packs up to this size are read whole and kept while trees are read from them… */
const TREE_PACK_CACHED = 4 * 1024 * 1024;
/** …up to this many bytes of them. */
const TREE_CACHE_BYTES = 8 * 1024 * 1024;
/** Trees up to this size are compressed synchronously. */
const SYNC_COMPRESS = 64 * 1024;
/** Blobs up to this raw size are decompressed synchronously (trees). */
const SYNC_DECOMPRESS = 256 * 1024;
/** A file's blobs read ahead of the one being written (restore): at most this many… */
const READ_AHEAD_BLOBS = 8;
/**
 * …and this many plain bytes (memory: a restore runs several files at once, and every blob
 * read ahead lives long enough to reach the old generation, where only a full collection
 * frees it). Large bench profile: 2 MiB peaked at 164 MiB RSS, 8 MiB at 244, same time.
 */
const READ_AHEAD_BYTES = 2 * 1024 * 1024;
/** Packs uploading at once per repository; more blocks saveFile (backpressure, memory bound). */
const MAX_UPLOADS = 2;
/** An index object is written after this many packs even without flush (bounds the work a kill loses from the index). */
const AUTO_INDEX_PACKS = 16;
const KEY_AAD = Buffer.from('nightjar key v1');

const NIGHTJAR_VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
})();

/** Options of init/open. */
export interface RepoOptions {
  clock: Clock;
  /** Worker threads for chunking/hashing/compression/encryption (default: available cores). */
  workers?: number;
  /** Target pack size in bytes (default 16 MiB). */
  packSize?: number;
  /** scrypt parameters for a new key object (init only; default N=2^15, r=8, p=1). Tests use smaller N. */
  kdf?: KdfParams;
  /** Host name recorded in locks and key objects (default os.hostname()). */
  hostname?: string;
  /** Process id recorded in locks (default process.pid; tests simulate other processes). */
  pid?: number;
  /** The chunker seed of a new repository (init only; default random). Tests fix it for reproducible chunk boundaries. */
  chunkerSeed?: Buffer;
  /** Start a worker thread at once (a backup: it boots while the index loads), not on first use; all of them when the repository is empty. */
  startWorkers?: boolean;
  /** Where the master keys unsealed by this passphrase are kept between opens (skips the key derivation). */
  keyCache?: KeyCache;
  /** Take a shared lock (a backup's) while the index loads; takeOpeningLock() hands it over. */
  sharedLock?: boolean;
  /** Where snapshot objects already read are kept between opens (listSnapshots reads only new ones). */
  snapshotCache?: SnapshotCache;
}

/**
 * Snapshot objects as stored (sealed), by id, kept by the caller between opens: they never
 * change once written, so a listing of `snapshots/` and the cache give every snapshot
 * without reading each one again (hundreds of reads per run on S3 or a peer after a year
 * of nightly backups). Entries are opened like objects read from the store, so a damaged
 * or foreign entry is read from the store instead.
 */
export interface SnapshotCache {
  load(): Promise<Map<string, Buffer>>;
  save(sealed: Map<string, Buffer>): Promise<void>;
}

/**
 * Master keys kept by the caller between opens of one repository with one passphrase
 * (the node keeps them beside its passphrase file, which guards the same secrets). A
 * loaded entry is used only if it decrypts the repository's config; otherwise the keys
 * are derived from the passphrase as usual and saved again.
 */
export interface KeyCache {
  load(): Promise<MasterKeys | null>;
  save(keys: MasterKeys): Promise<void>;
}

/** Decrypted `config` object. */
interface RepoConfig {
  version: number;
  id: string;
  chunker: ChunkerParams;
  compression: 'brotli-q1';
}

/** Plaintext of a key object (`keys/<id>`), stored as JSON. */
interface KeyObject {
  version: 1;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  created: string;
  host: string;
  data: string;
}

type Pending =
  | { state: 'reserved'; done: Promise<boolean>; settle: (stored: boolean) => void }
  | { state: 'stored'; read: () => Promise<Buffer>; rawLength: number; compressed: boolean };

/** A key object (JSON) holding `keys`, sealed by a key scrypt derives from `passphrase`. */
async function sealedKeyObject(passphrase: string, keys: MasterKeys, opts: RepoOptions): Promise<Buffer> {
  const kdf = opts.kdf ?? DEFAULT_KDF;
  const salt = randomBytes(32);
  const derived = await deriveKey(passphrase, salt, kdf);
  const secret = Buffer.from(
    JSON.stringify({
      encKey: keys.encKey.toString('base64'),
      idKey: keys.idKey.toString('base64'),
      chunkerSeed: keys.chunkerSeed.toString('base64'),
    }),
  );
  const keyObj: KeyObject = {
    version: 1,
    kdf: 'scrypt',
    N: kdf.N,
    r: kdf.r,
    p: kdf.p,
    salt: salt.toString('base64'),
    created: opts.clock.now().toISOString(),
    host: opts.hostname ?? hostname(),
    data: seal(derived, secret, KEY_AAD).toString('base64'),
  };
  return Buffer.from(JSON.stringify(keyObj, null, 1));
}

/**
 * A Nightjar repository on a Store (format in docs/FORMAT.md). One instance per open
 * repository; several instances (jobs, nodes) may write into one store at once.
 *
 * Concurrency: saveFile/saveTree may run concurrently; flush waits for every blob
 * whose saveFile/saveTree resolved before flush was called. A failed pack or index
 * upload poisons the instance: later saves and flush reject with that error (blobs
 * already reported by saveFile may be lost), so the engine must not snapshot; reopen.
 */
export class Repository {
  /** Repository id (hex, from `config`); the file cache keys on it. */
  readonly id: string;
  readonly store: Store;
  private readonly keys: MasterKeys;
  private readonly config: RepoConfig;
  private readonly opts: RepoOptions;
  private readonly packSize: number;
  private readonly index = new BlobIndex();
  private readonly loadedIndexes = new Set<string>();
  private readonly badIndexes = new Map<string, string>();
  private readonly pending = new Map<string, Pending>();
  /** The open data pack (a file) and tree pack (in memory: trees are small). */
  private dataPack: PackFile | null = null;
  private openTreePack: PackBuilder | null = null;
  private readonly uploads = new Set<Promise<void>>();
  /** Whole tree packs read by readBlob, most recently used last. */
  private readonly treePacks = new Map<string, Promise<Buffer>>();
  private treePackBytes = 0;
  private unindexed: IndexedPack[] = [];
  private indexChain: Promise<void> = Promise.resolve();
  private flushChain: Promise<void> = Promise.resolve();
  private failure: unknown = null;
  private pool: WorkerPool | null = null;
  private closed = false;
  /** See RepoOptions.sharedLock. */
  private openingLock: RepoLock | null = null;

  private constructor(store: Store, keys: MasterKeys, config: RepoConfig, opts: RepoOptions) {
    this.store = store;
    this.keys = keys;
    this.config = config;
    this.opts = opts;
    this.id = config.id;
    this.packSize = opts.packSize ?? DEFAULT_PACK_SIZE;
  }

  /** Creates a repository in an empty store. Throws RepoExistsError when `config` exists. */
  static async init(store: Store, passphrase: string, opts: RepoOptions): Promise<Repository> {
    if (await store.stat('config')) throw new RepoExistsError(store.location);
    const keys = generateMasterKeys();
    if (opts.chunkerSeed) keys.chunkerSeed = Buffer.from(opts.chunkerSeed);
    const config: RepoConfig = {
      version: FORMAT_VERSION,
      id: randomBytes(32).toString('hex'),
      chunker: DEFAULT_CHUNKER,
      compression: 'brotli-q1',
    };
    const repo = new Repository(store, keys, config, opts);
    // Nothing stored yet: the backup reads every file. Its threads boot (~60 ms each) while
    // scrypt derives the key object's key and the objects are written.
    if (opts.startWorkers) repo.workerPool().start(Infinity);
    try {
      const keyBytes = await sealedKeyObject(passphrase, keys, opts);
      await store.write(`keys/${sha256Hex(keyBytes)}`, keyBytes);
      await store.write('config', seal(keys.encKey, Buffer.from(JSON.stringify(config)), Buffer.from('config')));
    } catch (err) {
      await repo.close().catch(() => {});
      // The config is written last: another init got there first.
      throw err instanceof ObjectExistsError ? new RepoExistsError(store.location) : err;
    }
    await opts.keyCache?.save(keys).catch(() => {});
    return repo;
  }

  /** Opens an existing repository: RepoNotFoundError without `config`, WrongPassphraseError when no key opens. */
  static async open(store: Store, passphrase: string, opts: RepoOptions): Promise<Repository> {
    let configSealed: Buffer;
    try {
      configSealed = await store.read('config');
    } catch (err) {
      if (err instanceof NotFoundError) throw new RepoNotFoundError(store.location);
      throw err;
    }
    const cached = await opts.keyCache?.load().catch(() => null);
    const fromCache = cached ? readConfig(cached, configSealed) : null;
    if (cached && fromCache) return Repository.opened(store, cached, fromCache, opts);
    for await (const o of store.list('keys/')) {
      let keyObj: KeyObject;
      try {
        keyObj = JSON.parse((await store.read(o.name)).toString('utf8')) as KeyObject;
        if (keyObj.kdf !== 'scrypt' || typeof keyObj.salt !== 'string') continue;
      } catch {
        continue;
      }
      const derived = await deriveKey(passphrase, Buffer.from(keyObj.salt, 'base64'), keyObj);
      let keys: MasterKeys;
      try {
        const secret = JSON.parse(open(derived, Buffer.from(keyObj.data, 'base64'), o.name, KEY_AAD).toString('utf8')) as Record<string, string>;
        keys = {
          encKey: Buffer.from(secret.encKey!, 'base64'),
          idKey: Buffer.from(secret.idKey!, 'base64'),
          chunkerSeed: Buffer.from(secret.chunkerSeed!, 'base64'),
        };
      } catch {
        continue;
      }
      const config = readConfig(keys, configSealed);
      if (!config) continue; // a key left by an interrupted init of another repository generation
      await opts.keyCache?.save(keys).catch(() => {});
      return Repository.opened(store, keys, config, opts);
    }
    throw new WrongPassphraseError(store.location);
  }

  private static async opened(store: Store, keys: MasterKeys, config: RepoConfig, opts: RepoOptions): Promise<Repository> {
    if (config.version !== FORMAT_VERSION) throw new UnsupportedFormatError(config.version);
    const repo = new Repository(store, keys, config, opts);
    if (opts.startWorkers) repo.workerPool().start();
    // Both are store round trips: side by side, not one after the other.
    const locking = opts.sharedLock ? repo.lock(false) : undefined;
    locking?.catch(() => {}); // awaited below
    try {
      await repo.refreshIndex();
      if (locking) repo.openingLock = await locking;
    } catch (err) {
      await locking?.then((l) => l.release(), () => {}).catch(() => {});
      await repo.close().catch(() => {});
      throw err;
    }
    // Nothing stored yet: this backup reads every file, so every thread is wanted at once.
    if (opts.startWorkers && repo.index.size === 0) repo.workerPool().start(Infinity);
    return repo;
  }

  /** open, or init when the store holds no repository (race-safe against a concurrent init). */
  static async openOrInit(store: Store, passphrase: string, opts: RepoOptions): Promise<{ repo: Repository; created: boolean }> {
    try {
      return { repo: await Repository.open(store, passphrase, opts), created: false };
    } catch (err) {
      if (!(err instanceof RepoNotFoundError)) throw err;
    }
    try {
      return { repo: await Repository.init(store, passphrase, opts), created: true };
    } catch (err) {
      if (!(err instanceof RepoExistsError)) throw err;
      return { repo: await Repository.open(store, passphrase, opts), created: false };
    }
  }

  /**
   * The repository's secrets, for maintenance in this package that works on the objects
   * directly (prune rewrites index objects and repacks, verify opens blobs). Never log or
   * store them.
   */
  get masterKeys(): MasterKeys {
    return this.keys;
  }

  /** Chunker parameters of this repository. */
  get chunkerParams(): ChunkerParams {
    return this.config.chunker;
  }

  /** Number of blobs in the in-memory index. */
  get blobCount(): number {
    return this.index.size;
  }

  /**
   * Loads index objects not loaded yet (written by other writers since open). Damaged
   * index objects are skipped and reported by check. Safe to call at any time.
   */
  async refreshIndex(): Promise<void> {
    const names: string[] = [];
    let entriesAtMost = 0;
    for await (const o of this.store.list('index/')) {
      if (this.loadedIndexes.has(o.name)) continue;
      names.push(o.name);
      entriesAtMost += Math.floor(o.size / ENTRY_LEN);
    }
    // Room for all at once (an object holds at most size / ENTRY_LEN entries): growing per
    // index object would rehash the table each time.
    this.index.reserve(entriesAtMost);
    await mapLimit(names, 8, async (name) => {
      try {
        const plain = open(this.keys.encKey, await this.store.read(name), name);
        loadIndexInto(plain, this.index);
        this.loadedIndexes.add(name);
        this.badIndexes.delete(name);
      } catch (err) {
        this.badIndexes.set(name, err instanceof Error ? err.message : String(err));
      }
    });
  }

  /**
   * Stores a file's content: a worker reads `path` itself, chunks, hashes, and seals the
   * chunks not yet in the repository. Rejects with the fs error (ENOENT, EACCES, EISDIR
   * for a non-regular file, …) when the file cannot be read, or with `signal`'s reason.
   * `gate` is awaited before each chunk is accepted.
   */
  async saveFile(path: Buffer, opts: SaveFileOptions = {}): Promise<SaveFileResult> {
    this.ensureUsable();
    const content: string[] = [];
    /** Chunks claimed and not stored yet: their seqs (a file has few chunks: a Map each was garbage). */
    const owned: number[] = [];
    let bytesNew = 0;
    let bytesWritten = 0;
    let size = 0;
    /**
     * The file has ended (stored, failed or stopped) and its claims are dropped: a chunk
     * handler still waiting (for the gate, upload room or another file's reservation)
     * claims nothing more; a claim made after that would stay reserved for nobody, and
     * every later file with that blob would wait for it forever.
     */
    let ended = false;
    // A chunk is taken once the gate is open and the uploads have room (else after both).
    const take = (seq: number, id: string, raw: number): boolean | Promise<boolean> => {
      if (ended) return false;
      opts.signal?.throwIfAborted();
      this.ensureUsable();
      content[seq] = id;
      size += raw;
      const claimed = (need: boolean): boolean => {
        if (ended) {
          if (need) this.unclaim(id);
          return false;
        }
        if (need) {
          owned.push(seq);
          bytesNew += raw;
        } else opts.onChunk?.(raw);
        return need;
      };
      const need = this.claim(id);
      return typeof need === 'boolean' ? claimed(need) : need.then(claimed);
    };
    try {
      const r = await this.workerPool().run(
        path,
        {
          chunk: (seq, id, raw) => {
            const gate = opts.gate?.();
            // Backpressure: no new blob is asked for while the uploads are full.
            if (!gate && this.uploads.size < MAX_UPLOADS) return take(seq, id, raw);
            return (async () => {
              await gate;
              if (this.uploads.size >= MAX_UPLOADS) await this.uploadRoom();
              return take(seq, id, raw);
            })();
          },
          blob: (seq, sealed, raw, compressed) => {
            const at = owned.indexOf(seq);
            if (at < 0) throw new RepoError(`unexpected blob for chunk ${seq}`, 'NJ_REPO_WORKER');
            owned.splice(at, 1);
            const id = content[seq]!;
            bytesWritten += sealed.length;
            const written = this.addData(id, sealed, raw, compressed);
            if (!written) return opts.onChunk?.(raw);
            return written.then(() => opts.onChunk?.(raw));
          },
        },
        opts.signal,
        opts.expect ?? null,
      );
      return { content, size, bytesRead: r.bytesRead, bytesNew, bytesWritten, changedWhileRead: r.changed, statAfter: r.after };
    } finally {
      ended = true;
      for (const seq of owned) this.unclaim(content[seq]!);
    }
  }

  /**
   * Lists directory `path` in a worker thread: every entry's name and lstat (or the
   * lstat's error). Rejects with the fs error when the directory cannot be read. For the
   * backup walk: one message per directory instead of a thread-pool round trip per entry.
   */
  listDir(path: Buffer): Promise<RawListing> {
    this.ensureUsable();
    return this.workerPool().list(path);
  }

  /** Stores a directory listing (entries sorted by name bytes); returns its id. Deduplicates. */
  async saveTree(tree: Tree): Promise<string> {
    this.ensureUsable();
    const plain = encodeTree(tree);
    const id = blobId(this.keys.idKey, plain);
    if (this.uploads.size >= MAX_UPLOADS) await this.uploadRoom();
    if (!(await this.claim(id))) return id;
    try {
      // A listing of a usual directory (a few KiB) is compressed in place: tens of
      // microseconds, less than the thread-pool round trip of the async call.
      const z = plain.length <= SYNC_COMPRESS ? maybeCompressSync(plain) : await maybeCompress(plain);
      this.addTree(id, seal(this.keys.encKey, z ?? plain), plain.length, z !== null);
    } finally {
      this.unclaim(id);
    }
    return id;
  }

  /** True when the blob is in the index or saved in this session (durable after the next flush). */
  hasBlob(id: string): boolean {
    return this.index.has(id) || this.storedUnindexed(id);
  }

  /** A blob in a pack written but not indexed yet. */
  private storedUnindexed(id: string): boolean {
    return this.pending.get(id)?.state === 'stored';
  }

  /** hasBlob() of the id in bytes buf[at, at + length). */
  hasBlobAt(buf: Buffer, at: number, length: number): boolean {
    return this.index.hasAt(buf, at, length) || (this.pending.size > 0 && this.storedUnindexed(buf.toString('hex', at, at + length)));
  }

  /**
   * Finishes open packs, waits for their uploads and writes an index object for them.
   * After it resolves, every blob saved before the call is durable and indexed.
   */
  flush(): Promise<void> {
    const run = this.flushChain.then(async () => {
      this.ensureUsable();
      this.finishDataPack();
      this.finishTreePack();
      while (this.uploads.size > 0) await Promise.allSettled([...this.uploads]);
      this.ensureUsable();
      await this.writeIndex();
      this.ensureUsable();
    });
    this.flushChain = run.catch(() => {});
    return run;
  }

  /** Flushes, then writes `snapshots/<random id>`. */
  async saveSnapshot(s: SnapshotInput): Promise<Snapshot> {
    await this.flush();
    const id = randomBytes(32).toString('hex');
    const snap: Snapshot = {
      id,
      time: (s.time ?? this.opts.clock.now()).toISOString(),
      host: s.host,
      job: s.job,
      target: s.target,
      source: s.source,
      tags: s.tags ?? [],
      ...(s.parent !== undefined ? { parent: s.parent } : {}),
      tree: s.tree,
      ...(s.stats !== undefined ? { stats: s.stats } : {}),
      nightjarVersion: NIGHTJAR_VERSION,
    };
    const { id: _omit, ...body } = snap;
    void _omit;
    await this.store.write(`snapshots/${id}`, seal(this.keys.encKey, Buffer.from(JSON.stringify(body)), Buffer.from(id)));
    return snap;
  }

  /**
   * Every snapshot, oldest first (ties by id). Throws IntegrityError on a damaged snapshot
   * object. Reads only the objects not in the snapshot cache (RepoOptions.snapshotCache),
   * which then holds exactly the snapshots listed.
   */
  async listSnapshots(): Promise<Snapshot[]> {
    const ids: string[] = [];
    for await (const o of this.store.list('snapshots/')) ids.push(o.name.slice('snapshots/'.length));
    const cache = this.opts.snapshotCache;
    const cached = (cache && (await cache.load().catch(() => null))) ?? new Map<string, Buffer>();
    const kept = new Map<string, Buffer>();
    let read = 0;
    const out = await mapLimit(ids, 8, async (id) => {
      const hit = cached.get(id);
      if (hit) {
        try {
          const snap = this.openSnapshot(id, hit);
          kept.set(id, hit);
          return snap;
        } catch {
          // damaged or of another repository: read the object itself
        }
      }
      const sealed = await this.store.read(`snapshots/${id}`);
      const snap = this.openSnapshot(id, sealed);
      kept.set(id, sealed);
      read++;
      return snap;
    });
    if (cache && (read > 0 || kept.size !== cached.size)) await cache.save(kept).catch(() => {});
    return out.sort((a, b) => (a.time < b.time ? -1 : a.time > b.time ? 1 : a.id < b.id ? -1 : 1));
  }

  /** One snapshot by id. */
  async loadSnapshot(id: string): Promise<Snapshot> {
    return this.openSnapshot(id, await this.store.read(`snapshots/${id}`));
  }

  private openSnapshot(id: string, sealed: Buffer): Snapshot {
    const name = `snapshots/${id}`;
    const body = JSON.parse(open(this.keys.encKey, sealed, name, Buffer.from(id)).toString('utf8')) as Omit<Snapshot, 'id'>;
    return { id, ...body };
  }

  /** Resolves an id, a unique id prefix or 'latest' (newest; with filter.job, newest of that job). */
  async findSnapshot(ref: string, filter: { job?: string } = {}): Promise<Snapshot> {
    let all = await this.listSnapshots();
    if (filter.job !== undefined) all = all.filter((s) => s.job === filter.job);
    const scope = filter.job !== undefined ? ` of job ${filter.job}` : '';
    if (ref === 'latest') {
      const s = all[all.length - 1];
      if (!s) throw new SnapshotNotFoundError(`no snapshots${scope} in ${this.store.location}`);
      return s;
    }
    const exact = all.find((s) => s.id === ref);
    if (exact) return exact;
    const m = ref.length > 0 ? all.filter((s) => s.id.startsWith(ref.toLowerCase())) : [];
    if (m.length === 1) return m[0]!;
    if (m.length === 0) throw new SnapshotNotFoundError(`no snapshot${scope} matches "${ref}"`);
    throw new SnapshotNotFoundError(`"${ref}" is ambiguous: it matches ${m.length} snapshots (${m.slice(0, 5).map((s) => s.id.slice(0, 12)).join(', ')}…)`);
  }

  async loadTree(id: string): Promise<Tree> {
    return decodeTree(await this.readBlob(id));
  }

  /** A blob's plaintext, verified against its id (IntegrityError when damaged, BlobNotFoundError when unknown). */
  async readBlob(id: string): Promise<Buffer> {
    const p = this.pending.get(id);
    let sealed: Buffer;
    let rawLength: number;
    let compressed: boolean;
    let where: string;
    if (p?.state === 'stored') {
      ({ rawLength, compressed } = p);
      sealed = await p.read();
      where = 'an unflushed pack';
    } else {
      const loc = this.index.get(id);
      if (!loc) throw new BlobNotFoundError(id);
      where = packObjectName(loc.pack);
      const size = loc.type === 'tree' ? this.index.packSize(loc.pack) : 0;
      if (size > 0 && size <= TREE_PACK_CACHED) {
        // Trees are read many at a time (a walk, a restore): their pack is read once, whole.
        const pack = await this.treePack(loc.pack, where);
        if (loc.offset + loc.length > pack.length) throw new IntegrityError(`blob ${id} lies outside ${where}`);
        sealed = pack.subarray(loc.offset, loc.offset + loc.length);
      } else sealed = await this.store.read(where, { offset: loc.offset, length: loc.length });
      ({ rawLength, compressed } = loc);
    }
    let plain = open(this.keys.encKey, sealed, `blob ${id} in ${where}`);
    if (compressed) {
      try {
        // A small blob (a directory listing) is decompressed in place: microseconds, less than a thread-pool hop.
        plain = rawLength <= SYNC_DECOMPRESS ? decompressSync(plain, rawLength) : await decompress(plain, rawLength);
      } catch {
        throw new IntegrityError(`blob ${id} in ${where} (decompression failed)`);
      }
    }
    if (plain.length !== rawLength || blobId(this.keys.idKey, plain) !== id) throw new IntegrityError(`blob ${id} in ${where}`);
    return plain;
  }

  /** A tree pack's bytes, read whole once and kept (LRU, TREE_CACHE_BYTES in all). */
  private treePack(pack: string, where: string): Promise<Buffer> {
    let p = this.treePacks.get(pack);
    if (p) {
      this.treePacks.delete(pack);
      this.treePacks.set(pack, p);
      return p;
    }
    p = this.store.read(where);
    this.treePacks.set(pack, p);
    const size = this.index.packSize(pack);
    this.treePackBytes += size;
    p.catch(() => {
      if (this.treePacks.get(pack) === p) {
        this.treePacks.delete(pack);
        this.treePackBytes -= size;
      }
    });
    for (const [name] of this.treePacks) {
      if (this.treePackBytes <= TREE_CACHE_BYTES || name === pack) break;
      this.treePacks.delete(name);
      this.treePackBytes -= this.index.packSize(name);
    }
    return p;
  }

  /**
   * Streams a file's blobs in order to `write`, reading ahead up to READ_AHEAD_BLOBS blobs
   * and READ_AHEAD_BYTES of plain bytes (at least one blob), so reads and decompression
   * of a large file's next blobs overlap with writing this one.
   */
  async readFileContent(content: string[], write: (chunk: Buffer) => Promise<void>): Promise<void> {
    const ahead: { blob: Promise<Buffer>; bytes: number }[] = [];
    let aheadBytes = 0;
    let next = 0;
    const fill = () => {
      while (next < content.length && ahead.length < READ_AHEAD_BLOBS) {
        const id = content[next]!;
        const bytes = this.index.get(id)?.rawLength ?? 0;
        if (ahead.length > 0 && aheadBytes + bytes > READ_AHEAD_BYTES) break;
        next++;
        const blob = this.readBlob(id);
        blob.catch(() => {});
        ahead.push({ blob, bytes });
        aheadBytes += bytes;
      }
    };
    fill();
    while (ahead.length > 0) {
      const { blob, bytes } = ahead.shift()!;
      const b = await blob;
      aheadBytes -= bytes;
      fill();
      await write(b);
    }
  }

  /**
   * Verifies the repository: index objects decrypt; every indexed pack exists with its
   * recorded size; every snapshot decrypts and its trees load; every file's blobs are
   * indexed. With readData, every pack is read whole: its hash must equal its name and
   * every blob must decrypt to its id. Each problem names the damaged object and the
   * snapshot paths (`<snapshotId>:/path`) that depend on it. Packs no index mentions are
   * listed as unreferenced (harmless leftovers of an interrupted run), not as damage.
   */
  async check(opts: { readData?: boolean } = {}): Promise<CheckReport> {
    if (!this.failure && (this.pending.size > 0 || this.unindexed.length > 0)) await this.flush();
    await this.refreshIndex();
    const problems = new Map<string, CheckProblem>();
    const problem = (object: string, kind: CheckProblem['kind'], message: string, path?: string) => {
      let p = problems.get(object);
      if (!p) problems.set(object, (p = { object, kind, message, affected: [] }));
      if (path !== undefined && p.affected.length < 1000 && !p.affected.includes(path)) p.affected.push(path);
      return p;
    };
    for (const [name, msg] of this.badIndexes) problem(name, 'bad-index', msg);

    const storePacks = new Map<string, number>();
    for await (const o of this.store.list('data/')) storePacks.set(o.name.slice(o.name.lastIndexOf('/') + 1), o.size);
    const indexPacks = this.index.packs();
    const damagedPacks = new Set<string>();
    for (const [pack, size] of indexPacks) {
      const stored = storePacks.get(pack);
      if (stored === undefined) {
        damagedPacks.add(pack);
        problem(packObjectName(pack), 'missing-pack', `pack ${pack} is in the index but not in the store`);
      } else if (size !== 0 && stored !== size) {
        damagedPacks.add(pack);
        problem(packObjectName(pack), 'size-mismatch', `pack ${pack} has ${stored} bytes, the index says ${size}`);
      }
    }
    const unreferencedPacks = [...storePacks.keys()].filter((p) => !indexPacks.has(p)).map(packObjectName).sort();

    /** blob id → damaged object holding it (readData only). */
    const damagedBlobs = new Map<string, string>();
    let bytesVerified = 0;
    if (opts.readData) {
      const byPack = new Map<string, string[]>();
      for (const [id, loc] of this.index.entries()) {
        let l = byPack.get(loc.pack);
        if (!l) byPack.set(loc.pack, (l = []));
        l.push(id);
      }
      await mapLimit([...byPack.keys()].filter((p) => !damagedPacks.has(p)), 2, async (pack) => {
        const obj = packObjectName(pack);
        let data: Buffer;
        try {
          data = await this.store.read(obj);
        } catch (err) {
          damagedPacks.add(pack);
          problem(obj, 'unreadable', `pack ${pack}: ${(err as Error).message}`);
          return;
        }
        bytesVerified += data.length;
        if (sha256Hex(data) !== pack) problem(obj, 'hash-mismatch', `pack ${pack}: content does not match its name (damaged)`);
        try {
          readPackHeader(this.keys.encKey, data, obj);
        } catch (err) {
          problem(obj, 'decrypt-failed', `pack ${pack}: ${(err as Error).message}`);
        }
        for (const id of byPack.get(pack)!) {
          const loc = this.index.get(id)!;
          try {
            if (loc.offset + loc.length > data.length) throw new IntegrityError(`blob ${id} lies outside ${obj}`);
            let plain = open(this.keys.encKey, data.subarray(loc.offset, loc.offset + loc.length), `blob ${id} in ${obj}`);
            if (loc.compressed) plain = await decompress(plain, loc.rawLength);
            if (plain.length !== loc.rawLength || blobId(this.keys.idKey, plain) !== id) throw new IntegrityError(`blob ${id} in ${obj}`);
          } catch (err) {
            damagedBlobs.set(id, obj);
            problem(obj, 'decrypt-failed', `pack ${pack}: blob ${id} does not decrypt to its id`);
          }
        }
      });
    }

    let snapshots = 0;
    let trees = 0;
    const cleanTrees = new Set<string>();
    const names: string[] = [];
    for await (const o of this.store.list('snapshots/')) names.push(o.name);
    for (const name of names.sort()) {
      const sid = name.slice('snapshots/'.length);
      let snap: Snapshot;
      try {
        snap = await this.loadSnapshot(sid);
      } catch (err) {
        problem(name, 'bad-snapshot', `snapshot ${sid}: ${(err as Error).message}`);
        continue;
      }
      snapshots++;
      /** Location problem of a blob, or null when fine. Reports it with `path`. */
      const blobProblem = (id: string, path: string): boolean => {
        const loc = this.index.get(id);
        if (!loc) {
          problem(`blob ${id}`, 'missing-blob', `blob ${id} is in no index`, path);
          return true;
        }
        const dmg = damagedBlobs.get(id);
        if (dmg) {
          problem(dmg, 'decrypt-failed', '', path);
          return true;
        }
        if (damagedPacks.has(loc.pack)) {
          problem(packObjectName(loc.pack), 'missing-pack', '', path);
          return true;
        }
        return false;
      };
      const walk = async (treeId: string, path: string): Promise<boolean> => {
        if (cleanTrees.has(treeId)) return false;
        const at = `${sid}:${path}`;
        if (blobProblem(treeId, at)) return true;
        let tree: Tree;
        try {
          tree = await this.loadTree(treeId);
        } catch (err) {
          const loc = this.index.get(treeId)!;
          problem(packObjectName(loc.pack), err instanceof IntegrityError ? 'decrypt-failed' : 'bad-tree', `tree ${treeId}: ${(err as Error).message}`, at);
          return true;
        }
        trees++;
        let damaged = false;
        for (const e of tree.entries) {
          const p = (path === '/' ? '/' : path + '/') + e.name.toString('utf8');
          if (e.type === 'file') {
            for (const c of e.content ?? []) {
              if (blobProblem(c, `${sid}:${p}`)) {
                damaged = true;
                break;
              }
            }
          } else if (e.type === 'dir') {
            if (!e.subtree) {
              problem(`tree ${treeId}`, 'bad-tree', `directory entry without subtree`, `${sid}:${p}`);
              damaged = true;
            } else if (await walk(e.subtree, p)) damaged = true;
          }
        }
        if (!damaged) cleanTrees.add(treeId);
        return damaged;
      };
      await walk(snap.tree, '/');
    }
    for (const p of problems.values()) if (!p.message) p.message = `${p.object} is damaged`;
    return {
      ok: problems.size === 0,
      problems: [...problems.values()],
      unreferencedPacks,
      snapshots,
      trees,
      blobs: this.index.size,
      packs: indexPacks.size,
      bytesVerified,
    };
  }

  /**
   * Removes pack files a killed writer left in the store's spool directory (not touched
   * for a day, so no live writer's). Prune calls it under its exclusive lock.
   */
  async removeStaleSpoolFiles(): Promise<number> {
    return this.store.spool ? this.store.spool.cleanup(new Date(this.opts.clock.nowMs() - 24 * 3600_000)) : 0;
  }

  /** The lock taken while opening (RepoOptions.sharedLock), handed over once; null without one. */
  takeOpeningLock(): RepoLock | null {
    const lock = this.openingLock;
    this.openingLock = null;
    return lock;
  }

  /** Takes a repository lock (exclusive for prune; shared for backups). RepoLockedError on conflict. */
  lock(exclusive: boolean): Promise<RepoLock> {
    return acquireLock(
      { store: this.store, encKey: this.keys.encKey, clock: this.opts.clock, ...(this.opts.hostname ? { host: this.opts.hostname } : {}),
        ...(this.opts.pid !== undefined ? { pid: this.opts.pid } : {}),
      },
      exclusive,
    );
  }

  /** Stops the workers and waits for running uploads. Does not flush: call flush() first to keep unflushed blobs. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.takeOpeningLock()?.release().catch(() => {});
    await this.pool?.close();
    await Promise.allSettled([...this.uploads]);
    // An unflushed data pack is dropped with its file (its blobs were never indexed).
    await this.dataPack?.close();
    this.dataPack = null;
  }

  // ---------------------------------------------------------------- internals

  private ensureUsable(): void {
    if (this.failure) throw this.failure;
    if (this.closed) throw new RepoError('repository is closed', 'NJ_REPO_CLOSED');
  }

  private workerPool(): WorkerPool {
    this.pool ??= new WorkerPool({
      encKey: this.keys.encKey,
      idKey: this.keys.idKey,
      gear: gearTable(this.keys.chunkerSeed),
      params: this.config.chunker,
      // A store with a spool is a local disk: compress for speed (compress.ts).
      compression: this.store.spool ? 'fast' : 'small',
      ...(this.opts.workers !== undefined ? { workers: this.opts.workers } : {}),
    });
    return this.pool;
  }

  /** A Chunker with this repository's secret gear table (tools and tests). */
  makeChunker(): Chunker {
    return new Chunker(gearTable(this.keys.chunkerSeed), this.config.chunker);
  }

  /**
   * Reserves blob `id` for the caller to store: true, or false when it is stored already.
   * While another caller holds the reservation, the answer waits for that one's outcome.
   */
  private claim(id: string): boolean | Promise<boolean> {
    if (this.index.has(id)) return false;
    const p = this.pending.get(id);
    if (!p) {
      let settle!: (stored: boolean) => void;
      const done = new Promise<boolean>((r) => (settle = r));
      this.pending.set(id, { state: 'reserved', done, settle });
      return true;
    }
    if (p.state === 'stored') return false;
    return p.done.then((stored) => stored ? false : this.claim(id));
  }

  /** Drops a reservation that will not be fulfilled (no-op once stored). */
  private unclaim(id: string): void {
    const p = this.pending.get(id);
    if (p?.state === 'reserved') {
      this.pending.delete(id);
      p.settle(false);
    }
  }

  /** Marks a reserved blob as stored in this session (claimers waiting for it go on). */
  private stored(id: string, rawLength: number, compressed: boolean, read: () => Promise<Buffer>): void {
    const prev = this.pending.get(id);
    this.pending.set(id, { state: 'stored', read, rawLength, compressed });
    if (prev?.state === 'reserved') prev.settle(true);
  }

  /**
   * Appends a sealed data blob to the open data pack (a file) and starts the pack's
   * upload when it is full. `sealed` may be reused once this returns, or once the promise
   * it returns (a large blob's write) resolves. Never waits for uploads: callers wait for
   * upload room before asking for blobs (uploadRoom), which bounds the packs in flight.
   */
  private addData(id: string, sealed: Uint8Array, rawLength: number, compressed: boolean): Promise<void> | undefined {
    this.ensureUsable();
    const pack = (this.dataPack ??= new PackFile('data', this.store.spool?.dir ?? tmpdir()));
    const { entry, written } = pack.add(id, sealed, rawLength, compressed);
    this.stored(id, rawLength, compressed, () => pack.read(entry));
    if (pack.size >= this.packSize) this.finishDataPack();
    return written;
  }

  /** Copies a sealed tree blob into the open tree pack (synchronously: `sealed` may be reused once this returns). */
  private addTree(id: string, sealed: Uint8Array, rawLength: number, compressed: boolean): void {
    this.ensureUsable();
    const pack = (this.openTreePack ??= new PackBuilder('tree'));
    const { stored } = pack.add(id, sealed, rawLength, compressed);
    this.stored(id, rawLength, compressed, () => Promise.resolve(stored));
    if (pack.size >= this.packSize) this.finishTreePack();
  }

  /** Waits until fewer than MAX_UPLOADS packs are uploading. */
  private async uploadRoom(): Promise<void> {
    while (this.uploads.size >= MAX_UPLOADS) await Promise.race(this.uploads);
    this.ensureUsable();
  }

  private finishDataPack(): void {
    const pack = this.dataPack;
    if (!pack || pack.blobCount === 0) return;
    this.dataPack = null;
    this.upload(
      async () => {
        const { size, entries } = await pack.finish(this.keys.encKey);
        const name = await this.workerPool().hashFile(pack.path);
        const object = packObjectName(name);
        await ignoreExisting(this.store.spool ? this.store.spool.adopt(object, pack.path) : pack.readAll().then((data) => this.store.write(object, data)));
        return { name, size, entries };
      },
      // Once its blobs are indexed: until then readBlob reads them from the file.
      () => pack.close(),
    );
  }

  private finishTreePack(): void {
    const pack = this.openTreePack;
    if (!pack || pack.blobCount === 0) return;
    this.openTreePack = null;
    const { name, data, entries } = pack.finish(this.keys.encKey);
    this.upload(async () => {
      await ignoreExisting(this.store.write(packObjectName(name), data));
      return { name, size: data.length, entries };
    });
  }

  /**
   * Runs a pack's upload, then indexes the pack (an index object after AUTO_INDEX_PACKS
   * packs) and runs `cleanup`, also after a failure, which poisons the repository.
   */
  private upload(send: () => Promise<IndexedPack>, cleanup?: () => Promise<void>): void {
    const up = (async () => {
      try {
        const { name, size, entries } = await send();
        this.index.addPack(name, size);
        for (const e of entries) {
          this.index.add(e.id, { ...e, pack: name });
          this.pending.delete(e.id);
        }
        this.unindexed.push({ name, size, entries });
      } finally {
        await cleanup?.();
      }
      if (this.unindexed.length >= AUTO_INDEX_PACKS) await this.writeIndex();
    })()
      .catch((err) => {
        this.failure ??= err;
      })
      .finally(() => this.uploads.delete(up));
    this.uploads.add(up);
  }

  private writeIndex(): Promise<void> {
    const run = this.indexChain.then(async () => {
      if (this.unindexed.length === 0) return;
      const packs = this.unindexed;
      this.unindexed = [];
      const sealed = seal(this.keys.encKey, encodeIndex(packs));
      const name = `index/${sha256Hex(sealed)}`;
      try {
        await this.store.write(name, sealed);
      } catch (err) {
        if (!(err instanceof ObjectExistsError)) {
          this.unindexed.unshift(...packs);
          this.failure ??= err;
          throw err;
        }
      }
      this.loadedIndexes.add(name);
    });
    this.indexChain = run.catch(() => {});
    return run;
  }
}

/** The repository's config decrypted with `keys`, or null when they are not its keys. */
function readConfig(keys: MasterKeys, sealed: Buffer): RepoConfig | null {
  try {
    return JSON.parse(open(keys.encKey, sealed, 'config', Buffer.from('config')).toString('utf8')) as RepoConfig;
  } catch {
    return null;
  }
}

/** A pack that exists already has the same bytes (its name is their hash): not an error. */
async function ignoreExisting(write: Promise<void>): Promise<void> {
  try {
    await write;
  } catch (err) {
    if (!(err instanceof ObjectExistsError)) throw err;
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export type { PackEntry };
