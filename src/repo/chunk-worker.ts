/**
 * Worker thread of the WorkerPool: reads files itself, chunks, hashes, and — for chunks
 * the main thread says are new — compresses and encrypts them. Protocol (all messages
 * carry `job`):
 *   main → worker: {t:'job', job, path}  {t:'need', job, seq, need}  {t:'cancel', job}
 *   worker → main: {t:'chunk', job, seq, id, raw}          a chunk was cut and hashed
 *                  {t:'blob', job, seq, id, data, raw, compressed}   sealed bytes (transferred)
 *                  {t:'done', job, bytesRead, changed}      every chunk was answered
 *                  {t:'error', job, code, message, errno, syscall}
 * At most WINDOW chunks per job wait for an answer (backpressure: the main thread stops
 * answering while its gate is closed or its packs are uploading).
 */
import { promises as fsp } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { Chunker, type ChunkerParams } from './chunker.js';
import { maybeCompressSync } from './compress.js';
import { blobId, seal } from './crypto.js';

interface Init {
  encKey: Uint8Array;
  idKey: Uint8Array;
  gear: Int32Array;
  params: ChunkerParams;
  window: number;
}

const init = workerData as Init;
const encKey = Buffer.from(init.encKey);
const idKey = Buffer.from(init.idKey);
const chunker = new Chunker(init.gear, init.params);
const WINDOW = init.window;
const READ_SIZE = 1024 * 1024;
const port = parentPort!;

interface JobState {
  cancelled: boolean;
  pending: Map<number, Buffer>;
  waiter: (() => void) | null;
}
const jobs = new Map<number, JobState>();

port.on('message', (m: { t: string; job: number; path?: Uint8Array; seq?: number; need?: boolean }) => {
  if (m.t === 'job') {
    const st: JobState = { cancelled: false, pending: new Map(), waiter: null };
    jobs.set(m.job, st);
    runJob(m.job, Buffer.from(m.path!), st).finally(() => jobs.delete(m.job));
  } else if (m.t === 'need') {
    const st = jobs.get(m.job);
    if (!st) return;
    const chunk = st.pending.get(m.seq!);
    st.pending.delete(m.seq!);
    if (chunk && m.need && !st.cancelled) {
      try {
        const z = maybeCompressSync(chunk);
        const sealed = seal(encKey, z ?? chunk);
        const ab = toTransferable(sealed);
        port.postMessage(
          { t: 'blob', job: m.job, seq: m.seq, data: ab, raw: chunk.length, compressed: z !== null },
          [ab],
        );
      } catch (err) {
        st.cancelled = true;
        postError(m.job, err);
      }
    }
    wake(st);
  } else if (m.t === 'cancel') {
    const st = jobs.get(m.job);
    if (st) {
      st.cancelled = true;
      st.pending.clear();
      wake(st);
    }
  }
});

function wake(st: JobState): void {
  const w = st.waiter;
  st.waiter = null;
  w?.();
}

/** An ArrayBuffer holding exactly `b`'s bytes that may be transferred (not the shared pool). */
function toTransferable(b: Buffer): ArrayBuffer {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && b.buffer instanceof ArrayBuffer) return b.buffer;
  const ab = new ArrayBuffer(b.length);
  new Uint8Array(ab).set(b);
  return ab;
}

function postError(job: number, err: unknown): void {
  const e = err as NodeJS.ErrnoException;
  port.postMessage({ t: 'error', job, code: e?.code, message: e?.message ?? String(err), errno: e?.errno, syscall: e?.syscall });
}

async function runJob(job: number, path: Buffer, st: JobState): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(path, 'r');
    const before = await fh.stat({ bigint: true });
    if (!before.isFile()) {
      const err: NodeJS.ErrnoException = new Error(`not a regular file: ${path.toString()}`);
      err.code = 'EISDIR';
      throw err;
    }
    const { maxSize } = chunker.params;
    // Small files get small buffers; big ones a window of maxSize + one read.
    const cap = Math.max(64 * 1024, Math.min(Number(before.size) + 1, maxSize + READ_SIZE));
    let buf = Buffer.allocUnsafe(cap);
    let start = 0;
    let end = 0;
    let eof = false;
    let seq = 0;
    let bytesRead = 0;
    while (!st.cancelled) {
      // Fill until maxSize bytes are available or the file ends.
      while (!eof && end - start < maxSize) {
        if (end === buf.length) {
          if (start > 0) {
            buf.copy(buf, 0, start, end);
            end -= start;
            start = 0;
          } else {
            const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, maxSize + READ_SIZE));
            buf.copy(bigger, 0, 0, end);
            buf = bigger;
          }
        }
        const { bytesRead: n } = await fh.read(buf, end, Math.min(READ_SIZE, buf.length - end), null);
        if (n === 0) eof = true;
        end += n;
        bytesRead += n;
      }
      if (st.cancelled) break;
      if (end === start) break;
      const n = chunker.cut(buf, start, end);
      const chunk = Buffer.allocUnsafe(n);
      buf.copy(chunk, 0, start, start + n);
      start += n;
      const id = blobId(idKey, chunk);
      st.pending.set(seq, chunk);
      port.postMessage({ t: 'chunk', job, seq, id, raw: n });
      seq++;
      while (st.pending.size >= WINDOW && !st.cancelled) await new Promise<void>((r) => (st.waiter = r));
    }
    while (st.pending.size > 0 && !st.cancelled) await new Promise<void>((r) => (st.waiter = r));
    if (st.cancelled) return;
    const after = await fh.stat({ bigint: true });
    const changed =
      after.size !== before.size ||
      after.mtimeNs !== before.mtimeNs ||
      after.ctimeNs !== before.ctimeNs ||
      BigInt(bytesRead) !== before.size;
    port.postMessage({ t: 'done', job, bytesRead, changed });
  } catch (err) {
    if (!st.cancelled) postError(job, err);
  } finally {
    await fh?.close().catch(() => {});
  }
}
