import { Readable } from 'node:stream';
import type { WritePacer } from './store.js';

/**
 * The slices of `data` in order, each awaited through `pacer.take(n)` before it is
 * yielded (no copies: subarrays of `data`). Slice sizes follow `pacer.sliceBytes()` as
 * it is at each slice, so a limit changed mid-upload also changes the slice size, capped
 * at `maxSlice` (the store's own streaming slice).
 */
export async function* pacedSlices(data: Uint8Array, pacer: WritePacer, maxSlice = 64 * 1024): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.byteLength; ) {
    const n = Math.max(1, Math.min(pacer.sliceBytes(), maxSlice, data.byteLength - at));
    await pacer.take(n);
    yield Buffer.from(data.buffer, data.byteOffset + at, n);
    at += n;
  }
}

/**
 * A request body that sends `data` paced (a byte stream of paced slices). The stream's
 * buffer is one small slice (`highWaterMark` 1 byte) so the pacing is what the socket
 * sees, not a read-ahead of the stream.
 */
export function pacedBody(data: Uint8Array, pacer: WritePacer, maxSlice = 64 * 1024): Readable {
  return Readable.from(pacedSlices(data, pacer, maxSlice), { objectMode: false, highWaterMark: 1 });
}
