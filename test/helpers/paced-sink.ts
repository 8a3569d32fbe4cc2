import type { Clock } from '../../src/node/clock.js';
import type { ByteRange, ObjectInfo, Store, WriteOptions } from '../../src/store/store.js';

/** A store that "sends" each paced slice at the clock's time and records it. */
export class PacedSink implements Store {
  readonly location = 'sink:';
  readonly sends: Array<{ at: number; bytes: number; name: string }> = [];
  constructor(private readonly clock: Clock) {}
  async *list(): AsyncIterable<ObjectInfo> {}
  async stat(): Promise<ObjectInfo | null> {
    return null;
  }
  async read(_name: string, _range?: ByteRange): Promise<Buffer> {
    return Buffer.alloc(0);
  }
  async write(name: string, data: Buffer, opts?: WriteOptions): Promise<void> {
    for (let at = 0; at < data.length; ) {
      const n = Math.min(opts?.pace?.sliceBytes() ?? data.length, data.length - at);
      await opts?.pace?.take(n);
      this.sends.push({ at: this.clock.nowMs(), bytes: n, name });
      at += n;
    }
  }
  async delete(): Promise<void> {}
  async close(): Promise<void> {}
  bytesIn(from: number, to: number, name?: string): number {
    return this.sends.filter((s) => s.at >= from && s.at < to && (name === undefined || s.name.startsWith(name))).reduce((a, s) => a + s.bytes, 0);
  }
}

