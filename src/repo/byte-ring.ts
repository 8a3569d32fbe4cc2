/** A block of a ByteRing: its bytes, valid until `ByteRing.free(block)`. */
export interface RingBlock {
  readonly bytes: Buffer;
  readonly start: number;
  live: boolean;
}

/**
 * A fixed buffer handed out in blocks in order and given back in any order; space is
 * reclaimed from the oldest end, so one long-held block holds back the space after it.
 * A chunk worker keeps the chunks awaiting an answer here: one allocation for the
 * thread's life instead of one per chunk (thousands of small files' chunks would
 * otherwise fragment the thread's malloc arena and keep its memory high).
 */
export class ByteRing {
  private readonly buf: Buffer;
  /** Live and freed-but-not-reclaimed blocks, oldest first, from `first` on. */
  private readonly blocks: RingBlock[] = [];
  private first = 0;
  /** Where the next block goes. */
  private tail = 0;
  private liveBytes = 0;

  /** `memory`: the bytes to hand out (a buffer shared with another thread), else a new buffer of `capacity`. */
  constructor(
    readonly capacity: number,
    memory?: SharedArrayBuffer,
  ) {
    if (memory && memory.byteLength < capacity) throw new RangeError(`ring memory of ${memory.byteLength} bytes (capacity ${capacity})`);
    this.buf = memory ? Buffer.from(memory, 0, capacity) : Buffer.allocUnsafeSlow(capacity);
  }

  /** Bytes in live blocks. */
  get used(): number {
    return this.liveBytes;
  }

  /** A block of `n` bytes (1 ≤ n ≤ capacity), or null when there is no room until older blocks are freed. */
  alloc(n: number): RingBlock | null {
    if (n < 1 || n > this.capacity) throw new RangeError(`ring block of ${n} bytes (capacity ${this.capacity})`);
    let start: number;
    if (this.first === this.blocks.length) {
      start = 0; // empty: start over at the beginning
    } else {
      const head = this.blocks[this.first]!.start;
      if (this.tail > head) {
        // Free: [tail, capacity) and, after a wrap, [0, head).
        if (this.tail + n <= this.capacity) start = this.tail;
        else if (n <= head) start = 0;
        else return null;
      } else if (this.tail + n <= head) start = this.tail; // wrapped: free is [tail, head)
      else return null;
    }
    const block: RingBlock = { bytes: this.buf.subarray(start, start + n), start, live: true };
    this.blocks.push(block);
    this.tail = start + n;
    this.liveBytes += n;
    return block;
  }

  /** Gives a block back (a second free of the same block is ignored). */
  free(block: RingBlock): void {
    if (!block.live) return;
    block.live = false;
    this.liveBytes -= block.bytes.length;
    while (this.first < this.blocks.length && !this.blocks[this.first]!.live) this.first++;
    if (this.first === this.blocks.length) {
      this.blocks.length = 0;
      this.first = 0;
    } else if (this.first > 1024 && this.first * 2 > this.blocks.length) {
      this.blocks.splice(0, this.first);
      this.first = 0;
    }
  }
}
