import { createCipheriv, randomFillSync } from 'node:crypto';

/**
 * Content-defined chunking, FastCDC-style (Xia et al., 2016): a gear rolling hash
 * `h = (h << 1) + G[byte]` over 32 bits, so each bit of h depends on the last ≤ 32 bytes;
 * a cut where the top bits of h are zero. Normalized chunking (level 2): before the
 * average size a harder mask (avgBits + 2 bits) is used, after it an easier one
 * (avgBits − 2), which pulls chunk sizes toward the average. The first `minSize` bytes of
 * a chunk are skipped (never a cut there), which is also why FastCDC is fast.
 *
 * The gear table G is derived from the repository's secret chunker seed, so chunk
 * boundaries (and so chunk sizes a storage host sees) do not reveal content.
 */
export interface ChunkerParams {
  minSize: number;
  /** log2 of the average size. */
  avgBits: number;
  maxSize: number;
}

/** min 256 KiB, avg 1 MiB, max 4 MiB; see docs/FORMAT.md "Chunking" for why. */
export const DEFAULT_CHUNKER: ChunkerParams = { minSize: 256 * 1024, avgBits: 20, maxSize: 4 * 1024 * 1024 };

/** 256 gear values (int32) from the seed: the AES-256-CTR keystream (zero IV) of the seed. */
export function gearTable(seed: Buffer): Int32Array {
  const c = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16));
  const bytes = c.update(Buffer.alloc(1024));
  const out = new Int32Array(256);
  for (let i = 0; i < 256; i++) out[i] = bytes.readInt32LE(i * 4);
  return out;
}

/** Mask of the top `bits` bits of a 32-bit int. */
function topMask(bits: number): number {
  return (~0 << (32 - bits)) | 0;
}

/** A chunker bound to one gear table; stateless between calls, so one instance serves every file. */
export class Chunker {
  readonly params: ChunkerParams;
  private readonly gear: Int32Array;
  // Copied out of params: scan reads the same fields of every instance (one map, whatever
  // object the params came in: a worker's arrive structured-cloned).
  private readonly minSize: number;
  private readonly maxSize: number;
  private readonly maskS: number;
  private readonly maskL: number;
  private readonly avg: number;

  constructor(gear: Int32Array, params: ChunkerParams = DEFAULT_CHUNKER) {
    if (gear.length !== 256) throw new Error('gear table must have 256 entries');
    if (!(params.minSize > 0 && params.minSize < 2 ** params.avgBits && 2 ** params.avgBits < params.maxSize)) {
      throw new Error('chunker sizes must satisfy 0 < min < avg < max');
    }
    this.gear = gear;
    this.params = params;
    this.minSize = params.minSize;
    this.maxSize = params.maxSize;
    this.avg = 2 ** params.avgBits;
    this.maskS = topMask(params.avgBits + 2);
    this.maskL = topMask(params.avgBits - 2);
  }

  /**
   * Length of the chunk that starts at `buf[start]`, of which `buf[start, end)` holds the
   * first bytes; 0 when more bytes are needed to tell. `final`: no bytes follow `end` (end
   * of the file). `seen`: bytes of this chunk an earlier call looked at (its end − start
   * when it gave 0), so each byte is hashed once however the chunk's bytes arrive. The
   * same cuts for any split of the input.
   */
  scan(buf: Uint8Array, start: number, end: number, final: boolean, seen = 0): number {
    const have = end - start;
    const minSize = this.minSize;
    const maxSize = this.maxSize;
    if (have <= minSize) return final ? have : 0;
    const n = have < maxSize ? have : maxSize;
    const G = this.gear;
    const maskS = this.maskS;
    const maskL = this.maskL;
    let h = 0;
    let i = start + minSize;
    // h depends on the last 32 bytes only: rebuilt from them, not kept between calls.
    const from = start + seen;
    for (i = from - 32 > i ? from - 32 : i; i < from; i++) h = ((h << 1) + G[buf[i]!]!) | 0;
    const normEnd = start + (n < this.avg ? n : this.avg);
    const hardEnd = start + n;
    // Two bytes a turn (~20% faster here, the same cuts as one by one), then the odd one.
    // One loop per mask, written out: a helper shared by both ran ~13% slower here.
    for (; i + 1 < normEnd; i += 2) {
      h = ((h << 1) + G[buf[i]!]!) | 0;
      if ((h & maskS) === 0) return i - start + 1;
      h = ((h << 1) + G[buf[i + 1]!]!) | 0;
      if ((h & maskS) === 0) return i - start + 2;
    }
    if (i < normEnd) {
      h = ((h << 1) + G[buf[i]!]!) | 0;
      if ((h & maskS) === 0) return i - start + 1;
      i++;
    }
    for (; i + 1 < hardEnd; i += 2) {
      h = ((h << 1) + G[buf[i]!]!) | 0;
      if ((h & maskL) === 0) return i - start + 1;
      h = ((h << 1) + G[buf[i + 1]!]!) | 0;
      if ((h & maskL) === 0) return i - start + 2;
    }
    if (i < hardEnd) {
      h = ((h << 1) + G[buf[i]!]!) | 0;
      if ((h & maskL) === 0) return i - start + 1;
    }
    return n === maxSize || final ? n : 0;
  }

  /**
   * The chunk lengths of `buf` when its bytes arrive `piece` at a time, as a reader sees
   * them (a chunk's bytes so far are scanned again with `seen` set when more arrive).
   */
  chunkPieces(buf: Uint8Array, piece: number): number[] {
    const out: number[] = [];
    let start = 0;
    let seen = 0;
    let end = Math.min(piece, buf.length);
    while (start < buf.length) {
      const n = this.scan(buf, start, end, end === buf.length, seen);
      if (n > 0) {
        out.push(n);
        start += n;
        seen = 0;
        if (end < start) end = start;
      } else {
        seen = end - start;
        end = Math.min(end + piece, buf.length);
      }
    }
    return out;
  }

  /** All chunk lengths of a complete buffer (tests and tools). */
  chunkAll(buf: Uint8Array): number[] {
    const out: number[] = [];
    let pos = 0;
    while (pos < buf.length) {
      const n = this.scan(buf, pos, buf.length, true);
      out.push(n);
      pos += n;
    }
    return out;
  }
}

/**
 * Runs `scan` down each of its paths on a little random data (a chunker of tiny chunks,
 * the same gear table), so that the compiler's first optimized version of it has seen
 * every branch. A chunk thread does this when it starts: left to real data, `scan` was
 * optimized early (inside its first long loop) and thrown away on each path not seen yet,
 * ~12 times per thread, running unoptimized in between (~2.5% of a small first backup's
 * CPU). Chunks of ~16 bytes, an odd number of them before and after the average (both
 * loops end with their odd byte), the data fed whole and in pieces of odd and even sizes
 * (`seen` set, scans ended by the data's end). Returns the chunk lengths (the same for
 * every way of feeding: tests).
 */
export function primeChunker(gear: Int32Array): { whole: number[]; byPiece: number[][] } {
  const tiny = new Chunker(gear, { minSize: 1, avgBits: 4, maxSize: 21 });
  // A Buffer, as a thread's chunks are (another class would be another path to see).
  const data = randomFillSync(Buffer.allocUnsafe(16 * 1024));
  return { whole: tiny.chunkAll(data), byPiece: [7, 100, 333, 4096].map((piece) => tiny.chunkPieces(data, piece)) };
}
