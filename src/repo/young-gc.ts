import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const collect = runInNewContext('gc') as (o: { type: 'minor' }) => void;

/**
 * Frees dropped buffers sooner than V8 would. A buffer's bytes live outside the heap and
 * its handle is small, so V8 collects dead buffers only after 64 MiB of them (or when its
 * young generation fills with other objects): a thread that makes a new buffer per chunk
 * and drops it a moment later (a chunk worker's compression and encryption output) keeps
 * tens of MiB of them in its malloc arena. A young-generation collection every `every`
 * dropped bytes (~1 ms or less) frees them. Importing this module exposes `gc` to contexts
 * made afterwards (a process-wide V8 flag); only chunk workers import it.
 */
export class GarbageMeter {
  private bytes = 0;

  constructor(private readonly every: number) {}

  /** Counts `n` more bytes of buffers dropped (or about to be). */
  dropped(n: number): void {
    this.bytes += n;
    if (this.bytes < this.every) return;
    this.bytes = 0;
    collect({ type: 'minor' });
  }
}
