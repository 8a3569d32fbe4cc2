import { NotFoundError } from '../store/store.js';
import { blobId, open, sha256Hex } from './crypto.js';
import { decompressSync } from './compress.js';
import { packObjectName, readPackHeader } from './pack.js';
import type { Repository } from './repository.js';

/** Which share of the packs one verify reads: bucket `bucket` (0-based) of `of`. */
export interface DataSubset {
  readonly bucket: number;
  readonly of: number;
}

/**
 * Parses `--read-data-subset`: `n/t` (bucket n of t, 1-based as restic writes it) or
 * `P%` (a share; the bucket then comes from `cycle`: successive cycles take successive
 * buckets, so ceil(100/P) cycles read every pack once). Throws RangeError on bad input.
 */
export function parseDataSubset(text: string, cycle = 0): DataSubset {
  const frac = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (frac) {
    const n = Number(frac[1]);
    const t = Number(frac[2]);
    if (t < 1 || n < 1 || n > t) throw new RangeError(`invalid subset "${text}", must be n/t with 1 <= n <= t`);
    return { bucket: n - 1, of: t };
  }
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(text.trim());
  if (pct) {
    const p = Number(pct[1]);
    if (!(p > 0 && p <= 100)) throw new RangeError(`invalid subset "${text}", the share must be between 0% and 100%`);
    return subsetForCycle(p, cycle);
  }
  throw new RangeError(`invalid subset "${text}", expected n/t (e.g. 2/5) or a share (e.g. 10%)`);
}

/** The bucket a `percent` verify reads in its `cycle`-th run (rotation: every pack once per ceil(100/percent) runs). */
export function subsetForCycle(percent: number, cycle: number): DataSubset {
  const of = Math.max(1, Math.ceil(100 / percent));
  return { bucket: ((cycle % of) + of) % of, of };
}

/**
 * The packs of `subset`: a pack belongs to bucket (first 4 bytes of its id) mod `of`.
 * Pack ids are SHA-256 values, so buckets are even; a pack stays in its bucket forever,
 * so the buckets of one rotation together are every pack exactly once. Pure.
 */
export function packsInSubset(packs: Iterable<string>, subset: DataSubset): string[] {
  return [...packs].filter((p) => Number.parseInt(p.slice(0, 8), 16) % subset.of === subset.bucket);
}

export interface PackProblem {
  readonly pack: string;
  readonly message: string;
}

export interface VerifyReport {
  readonly packs: number;
  readonly bytesRead: number;
  readonly problems: readonly PackProblem[];
}

/**
 * Reads the given packs back and verifies each: SHA-256 equals its name, the header
 * decrypts, every blob decrypts, decompresses and hashes to its id. Reads one pack at a
 * time (memory: one pack). Never throws for damage (it is in the report); a store error
 * other than a missing pack propagates, and so does `signal`'s reason (checked between packs).
 */
export async function verifyPacks(repo: Repository, packs: readonly string[], opts: { signal?: AbortSignal } = {}): Promise<VerifyReport> {
  const keys = repo.masterKeys;
  const problems: PackProblem[] = [];
  let bytesRead = 0;
  for (const pack of packs) {
    opts.signal?.throwIfAborted();
    const name = packObjectName(pack);
    let data: Buffer;
    try {
      data = await repo.store.read(name);
    } catch (err) {
      if (err instanceof NotFoundError) {
        problems.push({ pack, message: `${name} is missing` });
        continue;
      }
      throw err;
    }
    bytesRead += data.length;
    if (sha256Hex(data) !== pack) {
      problems.push({ pack, message: `${name}: content does not match its name (damaged)` });
      continue;
    }
    try {
      for (const e of readPackHeader(keys.encKey, data, name)) {
        const plain0 = open(keys.encKey, data.subarray(e.offset, e.offset + e.length), `blob ${e.id} in ${name}`);
        const plain = e.compressed ? decompressSync(plain0, e.rawLength) : plain0;
        if (plain.length !== e.rawLength || blobId(keys.idKey, plain) !== e.id) {
          problems.push({ pack, message: `${name}: blob ${e.id} does not match its id` });
        }
      }
    } catch (err) {
      problems.push({ pack, message: err instanceof Error ? err.message : String(err) });
    }
  }
  return { packs: packs.length, bytesRead, problems };
}

/** Every pack the store holds (`data/`), by id. */
export async function listPacks(repo: Repository): Promise<string[]> {
  const out: string[] = [];
  for await (const o of repo.store.list('data/')) {
    const m = /^data\/[0-9a-f]{2}\/([0-9a-f]{64})$/.exec(o.name);
    if (m) out.push(m[1]!);
  }
  return out;
}


