import { open, seal, sha256Hex, type MasterKeys } from './crypto.js';
import { RepoError } from './errors.js';
import { decodeIndex, encodeIndex, packObjectName, type IndexedPack } from './pack.js';
import type { Repository } from './repository.js';

const PACK_OBJECT = /^data\/[0-9a-f]{2}\/[0-9a-f]{64}$/;

/** A pack at least this share garbage (by bytes) is reported as worth repacking. */
export const REPACK_GARBAGE_SHARE = 0.8;

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
  /** Packs kept that are mostly garbage (>= REPACK_GARBAGE_SHARE); repacking is not done yet. */
  readonly mostlyGarbagePacks: number;
  /** Garbage bytes left in kept packs. */
  readonly garbageBytesKept: number;
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
export async function prune(repo: Repository, opts: { dryRun?: boolean } = {}): Promise<PruneReport> {
  const dryRun = opts.dryRun === true;
  const lock = dryRun ? null : await repo.lock(true);
  try {
    return await pruneLocked(repo, dryRun);
  } finally {
    await lock?.release();
  }
}

async function pruneLocked(repo: Repository, dryRun: boolean): Promise<PruneReport> {
  const store = repo.store;
  const keys = repositoryKeys(repo);
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
  let garbageBytesKept = 0;
  let mostlyGarbage = 0;
  for (const p of indexedPacks.values()) {
    let liveBytes = 0;
    let garbage = 0;
    for (const e of p.entries) {
      if (live.has(e.id)) liveBytes += e.length;
      else garbage += e.length;
    }
    if (liveBytes === 0) dead.add(p.name);
    else {
      garbageBytesKept += garbage;
      if (garbage / (garbage + liveBytes) >= REPACK_GARBAGE_SHARE) mostlyGarbage++;
    }
  }
  // Only objects named like packs; anything else under data/ is not ours to judge.
  const unreferenced = [...dataObjects.keys()].filter((n) => PACK_OBJECT.test(n) && !indexedPacks.has(n.slice(n.lastIndexOf('/') + 1)));
  const rewrite = [...indexes].filter(([, packs]) => packs.some((p) => dead.has(p.name)));
  let bytesFreed = 0;
  for (const p of dead) bytesFreed += dataObjects.get(packObjectName(p)) ?? indexedPacks.get(p)!.size;
  for (const n of unreferenced) bytesFreed += dataObjects.get(n)!;

  if (!dryRun) {
    // 1. New index objects first: a kill after this leaves duplicates, which are valid.
    for (const [, packs] of rewrite) {
      const keep = packs.filter((p) => !dead.has(p.name));
      if (keep.length === 0) continue;
      const sealed = seal(keys.encKey, encodeIndex(keep));
      await store.write(`index/${sha256Hex(sealed)}`, sealed);
    }
    // 2. Then the old index objects.
    for (const [name] of rewrite) await store.delete(name);
    // 3. Then the packs.
    for (const p of dead) if (dataObjects.has(packObjectName(p))) await store.delete(packObjectName(p));
    for (const n of unreferenced) await store.delete(n);
  }
  return {
    dryRun,
    snapshots: snapshots.length,
    liveBlobs: live.size,
    deletedPacks: [...dead],
    unreferencedPacks: unreferenced,
    rewrittenIndexes: rewrite.length,
    bytesFreed,
    mostlyGarbagePacks: mostlyGarbage,
    garbageBytesKept,
  };
}

/**
 * The repository's keys. Repository keeps them private and offers no index-maintenance
 * accessor yet; prune needs the encryption key to read and seal index objects.
 */
function repositoryKeys(repo: Repository): MasterKeys {
  const keys = (repo as unknown as { keys?: MasterKeys }).keys;
  if (!keys?.encKey) throw new RepoError('prune: repository keys unavailable', 'NJ_REPO');
  return keys;
}
