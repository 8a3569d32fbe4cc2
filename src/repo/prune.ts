import { open, seal, sha256Hex, type MasterKeys } from './crypto.js';
import { RepoError } from './errors.js';
import { decodeIndex, encodeIndex, ENTRY_LEN, packObjectName, writeEntry, type IndexedPack, type PackEntry } from './pack.js';
import type { Repository } from './repository.js';

const PACK_OBJECT = /^data\/[0-9a-f]{2}\/[0-9a-f]{64}$/;

/** A pack at least this share garbage (by bytes) is repacked: its live blobs move to a new pack. */
export const REPACK_GARBAGE_SHARE = 0.8;
/** Target size of the packs a repack writes (as the writer's default). */
const REPACK_PACK_SIZE = 16 * 1024 * 1024;

/** Thrown when prune refuses to act (a failed or suspicious listing, a damaged snapshot tree). Nothing was changed. */
export class PruneRefusedError extends RepoError {
  constructor(message: string) {
    super(`prune refused: ${message}`, 'NJ_PRUNE_REFUSED');
    this.name = 'PruneRefusedError';
  }
}

export interface PruneReport {
  readonly dryRun: boolean;
  readonly snapshots: number;
  /** Blobs reachable from some snapshot. */
  readonly liveBlobs: number;
  /** Packs named by the index with no live blob: deleted. */
  readonly deletedPacks: readonly string[];
  /** Packs in data/ that no index object names (crash leftovers): deleted. */
  readonly unreferencedPacks: readonly string[];
  /** Index objects rewritten without the deleted packs (old names). */
  readonly rewrittenIndexes: number;
  readonly bytesFreed: number;
  /** Mostly-garbage packs (>= REPACK_GARBAGE_SHARE) whose live blobs were moved to new packs, then deleted. */
  readonly repackedPacks: readonly string[];
  /** The packs written by the repack. */
  readonly newPacks: readonly string[];
  /** Garbage bytes left in kept packs (below the repack threshold). */
  readonly garbageBytesKept: number;
  /** Pack files left half-built by killed backups (a day old or more), removed. */
  readonly spoolFilesRemoved: number;
}

/**
 * Removes data no snapshot references (docs/FORMAT.md "Prune"). Under an exclusive
 * repository lock (so no backup writes meanwhile; RepoLockedError otherwise):
 * 1. list snapshots, index objects and packs — any listing error, or no snapshots while
 *    the index names packs, or no index while packs exist, refuses (PruneRefusedError);
 * 2. mark every blob reachable from every snapshot (a tree that cannot be read refuses);
 * 3. write new index objects without the dead packs, then delete the old index objects,
 *    then delete the dead packs and the packs no index names.
 * A kill at any step leaves a valid repository: until step 3's deletes, both old and new
 * index objects name the live packs (duplicates are valid); a dead pack that outlives its
 * index entry is an unreferenced pack, deleted by the next prune.
 * With `dryRun` nothing is written or deleted and no lock is taken. `repo` must be freshly
 * opened (its index is refreshed here).
 */
export async function prune(repo: Repository, opts: { dryRun?: boolean; repack?: boolean } = {}): Promise<PruneReport> {
  const dryRun = opts.dryRun === true;
  const lock = dryRun ? null : await repo.lock(true);
  try {
    return await pruneLocked(repo, dryRun, opts.repack !== false);
  } finally {
    await lock?.release();
  }
}

async function pruneLocked(repo: Repository, dryRun: boolean, repackAllowed: boolean): Promise<PruneReport> {
  const store = repo.store;
  const keys = repo.masterKeys;
  const listing = async (prefix: string) => {
    const out = new Map<string, number>();
    try {
      for await (const o of store.list(prefix)) out.set(o.name, o.size);
    } catch (err) {
      throw new PruneRefusedError(`listing ${prefix} in ${store.location} failed (${err instanceof Error ? err.message : String(err)}); nothing was deleted`);
    }
    return out;
  };
  const indexNames = await listing('index/');
  const dataObjects = await listing('data/');
  let snapshots;
  try {
    snapshots = await repo.listSnapshots();
  } catch (err) {
    throw new PruneRefusedError(`reading the snapshots failed (${err instanceof Error ? err.message : String(err)}); nothing was deleted`);
  }

  // Read every index object (which packs each one names).
  const indexes = new Map<string, IndexedPack[]>();
  for (const name of indexNames.keys()) {
    let packs: IndexedPack[];
    try {
      const plain = open(keys.encKey, await store.read(name), name);
      packs = [];
      decodeIndex(plain, (pack, size, entries) => packs.push({ name: pack, size, entries }));
    } catch (err) {
      // A damaged index could hide live packs: deleting by it is not safe.
      throw new PruneRefusedError(`index object ${name} cannot be read (${err instanceof Error ? err.message : String(err)}); run check`);
    }
    indexes.set(name, packs);
  }
  const indexedPacks = new Map<string, IndexedPack>();
  for (const packs of indexes.values()) for (const p of packs) if (!indexedPacks.has(p.name)) indexedPacks.set(p.name, p);
  if (snapshots.length === 0 && indexedPacks.size > 0) {
    throw new PruneRefusedError(`no snapshots were listed although the index names ${indexedPacks.size} pack(s); a failed listing would delete everything, so nothing was deleted`);
  }
  if (indexNames.size === 0 && dataObjects.size > 0) {
    throw new PruneRefusedError(`no index objects were listed although ${dataObjects.size} pack(s) exist; nothing was deleted`);
  }

  // Mark.
  await repo.refreshIndex();
  const live = new Set<string>();
  const walk = async (treeId: string): Promise<void> => {
    if (live.has(treeId)) return;
    let tree;
    try {
      tree = await repo.loadTree(treeId);
    } catch (err) {
      throw new PruneRefusedError(`tree ${treeId} cannot be read (${err instanceof Error ? err.message : String(err)}); run check`);
    }
    live.add(treeId);
    for (const e of tree.entries) {
      for (const id of e.content ?? []) live.add(id);
      if (e.subtree) await walk(e.subtree);
    }
  };
  for (const s of snapshots) await walk(s.tree);

  // Sweep plan.
  const dead = new Set<string>();
  const repack = new Set<string>();
  let garbageBytesKept = 0;
  for (const p of indexedPacks.values()) {
    let liveBytes = 0;
    let garbage = 0;
    for (const e of p.entries) {
      if (live.has(e.id)) liveBytes += e.length;
      else garbage += e.length;
    }
    if (liveBytes === 0) dead.add(p.name);
    else if (repackAllowed && garbage / (garbage + liveBytes) >= REPACK_GARBAGE_SHARE) repack.add(p.name);
    else garbageBytesKept += garbage;
  }
  const gone = new Set([...dead, ...repack]);
  // Only objects named like packs; anything else under data/ is not ours to judge.
  const unreferenced = [...dataObjects.keys()].filter((n) => PACK_OBJECT.test(n) && !indexedPacks.has(n.slice(n.lastIndexOf('/') + 1)));
  const rewrite = [...indexes].filter(([, packs]) => packs.some((p) => gone.has(p.name)));
  let bytesFreed = 0;
  for (const p of gone) bytesFreed += dataObjects.get(packObjectName(p)) ?? indexedPacks.get(p)!.size;
  for (const n of unreferenced) bytesFreed += dataObjects.get(n)!;

  const newPacks: IndexedPack[] = [];
  if (dryRun) {
    // Estimate: the live bytes of repacked packs are written again.
    for (const p of repack) for (const e of indexedPacks.get(p)!.entries) if (live.has(e.id)) bytesFreed -= e.length;
  } else {
    // 0. Repack: copy the live sealed blobs (sealed without pack-specific data) into new packs.
    newPacks.push(...(await repackLive(store, keys, [...repack].map((p) => indexedPacks.get(p)!), live)));
    for (const p of newPacks) bytesFreed -= p.size;
    if (newPacks.length > 0) {
      const sealed = seal(keys.encKey, encodeIndex(newPacks));
      await store.write(`index/${sha256Hex(sealed)}`, sealed);
    }
    // 1. New index objects first: a kill after this leaves duplicates, which are valid.
    for (const [, packs] of rewrite) {
      const keep = packs.filter((p) => !gone.has(p.name));
      if (keep.length === 0) continue;
      const sealed = seal(keys.encKey, encodeIndex(keep));
      await store.write(`index/${sha256Hex(sealed)}`, sealed);
    }
    // 2. Then the old index objects.
    for (const [name] of rewrite) await store.delete(name);
    // 3. Then the packs.
    for (const p of gone) if (dataObjects.has(packObjectName(p))) await store.delete(packObjectName(p));
    for (const n of unreferenced) await store.delete(n);
  }
  const spoolFilesRemoved = dryRun ? 0 : await repo.removeStaleSpoolFiles();
  return {
    dryRun,
    snapshots: snapshots.length,
    liveBlobs: live.size,
    deletedPacks: [...dead],
    unreferencedPacks: unreferenced,
    rewrittenIndexes: rewrite.length,
    bytesFreed,
    repackedPacks: [...repack],
    newPacks: newPacks.map((p) => p.name),
    garbageBytesKept,
    spoolFilesRemoved,
  };
}

/**
 * Writes the live blobs of `packs` into new packs of the same type (FORMAT.md "Blobs and
 * packs": blobs ‖ sealed header ‖ u32le header length; name = SHA-256), each blob once.
 * A blob that no longer decrypts is not copied and its pack is not repacked (refuses:
 * check first). Returns the new packs as index entries.
 */
async function repackLive(store: Repository['store'], keys: MasterKeys, packs: IndexedPack[], live: ReadonlySet<string>): Promise<IndexedPack[]> {
  const out: IndexedPack[] = [];
  const moved = new Set<string>();
  for (const type of ['data', 'tree'] as const) {
    let parts: Buffer[] = [];
    let entries: PackEntry[] = [];
    let bytes = 0;
    const finish = async () => {
      if (entries.length === 0) return;
      const header = Buffer.alloc(9 + entries.length * ENTRY_LEN);
      Buffer.from('NJPH').copy(header, 0);
      header[4] = 1;
      header.writeUInt32LE(entries.length, 5);
      let pos = 9;
      for (const e of entries) pos = writeEntry(header, pos, e);
      const sealedHeader = seal(keys.encKey, header);
      const trailer = Buffer.alloc(4);
      trailer.writeUInt32LE(sealedHeader.length, 0);
      const data = Buffer.concat([...parts, sealedHeader, trailer]);
      const name = sha256Hex(data);
      await store.write(packObjectName(name), data);
      out.push({ name, size: data.length, entries });
      parts = [];
      entries = [];
      bytes = 0;
    };
    for (const p of packs) {
      const mine = p.entries.filter((e) => e.type === type && live.has(e.id) && !moved.has(e.id));
      if (mine.length === 0) continue;
      const data = await store.read(packObjectName(p.name));
      for (const e of mine) {
        const sealed = data.subarray(e.offset, e.offset + e.length);
        try {
          open(keys.encKey, sealed, `blob ${e.id}`);
        } catch {
          throw new PruneRefusedError(`blob ${e.id} in pack ${p.name} is damaged; run check (the new packs written so far are unreferenced and go with the next prune)`);
        }
        entries.push({ ...e, offset: bytes });
        parts.push(Buffer.from(sealed));
        bytes += sealed.length;
        moved.add(e.id);
        if (bytes >= REPACK_PACK_SIZE) await finish();
      }
    }
    await finish();
  }
  return out;
}

