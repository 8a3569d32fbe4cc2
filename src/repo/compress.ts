import { promisify } from 'node:util';
import zlib from 'node:zlib';

/**
 * Compression: brotli quality 1 (FORMAT.md "Compression"). Measured here on 32 MiB of
 * JavaScript in 1 MiB blocks: brotli-1 ratio 0.221 at 284 MB/s, deflate-raw-1 0.241 at
 * 165 MB/s; on random data brotli-1 gives up at 2.2 GB/s, deflate at 55 MB/s.
 */
const SAMPLE = 32 * 1024;
const PARAMS = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } };

/**
 * Brotli quality for file content: 1 (`small`) where bytes cost time on a line (peer node,
 * S3); 0 (`fast`) for a local disk, where the CPU is the limit: on the bench data 8% less
 * backup time for 3% more bytes. Either decodes the same way.
 */
export type ContentCompression = 'fast' | 'small';

/** True when `out` is at least 1/8 smaller than `inLen`. */
function pays(outLen: number, inLen: number): boolean {
  return outLen <= inLen - (inLen >> 3);
}

/**
 * Compresses `data` when it shrinks by at least 1/8; returns null otherwise. A 32 KiB
 * sample from the middle is tried first on larger inputs, which saves the full attempt on
 * incompressible data. Synchronous: for worker threads.
 */
export function maybeCompressSync(data: Uint8Array, level: ContentCompression = 'small'): Buffer | null {
  if (data.length < 64) return null;
  if (data.length > 4 * SAMPLE) {
    const mid = (data.length >> 1) - (SAMPLE >> 1);
    const sample = data.subarray(mid, mid + SAMPLE);
    if (!pays(zlib.brotliCompressSync(sample, { ...PARAMS, chunkSize: SAMPLE }).length, SAMPLE)) return null;
  }
  // chunkSize: the output goes into one buffer of the input's size, not 16 KiB pieces joined
  // afterwards (fewer allocations: less work, and less fragmentation of a worker's heap).
  // A 1 MiB window (LGWIN 20, default 4 MiB): ~7% less CPU on the bench data, same size.
  const out = zlib.brotliCompressSync(data, {
    chunkSize: Math.max(zlib.constants.Z_MIN_CHUNK, data.length),
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: level === 'fast' ? 0 : 1,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: data.length,
      [zlib.constants.BROTLI_PARAM_LGWIN]: 20,
    },
  });
  return pays(out.length, data.length) ? out : null;
}

const brotliCompress = promisify(zlib.brotliCompress);
const brotliDecompress = promisify(zlib.brotliDecompress);

/** As maybeCompressSync, on the libuv thread pool (main thread: trees). */
export async function maybeCompress(data: Buffer): Promise<Buffer | null> {
  if (data.length < 64) return null;
  const out = await brotliCompress(data, PARAMS);
  return pays(out.length, data.length) ? out : null;
}

/** Decompresses on the libuv thread pool; `rawLength` bounds the output. */
export function decompress(data: Buffer, rawLength: number): Promise<Buffer> {
  return brotliDecompress(data, { maxOutputLength: Math.max(rawLength, 1) });
}

export function decompressSync(data: Uint8Array, rawLength: number): Buffer {
  return zlib.brotliDecompressSync(data, { maxOutputLength: Math.max(rawLength, 1) });
}
