/** A block of a ByteRing: its bytes, valid until `ByteRing.free(block)` (or a resize that moves them). */
export interface RingBlock {
  bytes: Buffer;
  start: number;
  live: boolean;
}

/**
 * A fixed buffer handed out in blocks in order and given back in any order; space is
 * reclaimed from the oldest end, so one long-held block holds back the space after it.
 * A block goes back to the start as soon as it fits before the oldest block, not only
 * once the end is reached: the blocks stay at the low end, and the pages past what is
 * used at once are never touched (a worker's ring is sized for a largest chunk beside a
 * full pending budget, and small files used all of it in turn: ~5 MiB less RSS with two
 * threads on the bench's small profile).
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
        // Free: [0, head) and [tail, capacity).
        if (n <= head) start = 0;
        else if (this.tail + n <= this.capacity) start = this.tail;
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

  /**
   * The newest block resized to `n` bytes, its first `keep` bytes kept: in place when it
   * shrinks or the space after it is free; else moved (the bytes copied) to where `alloc`
   * would put a new block, or to the start when it is the only block. Null when there is
   * no room until older blocks are freed (the block is left as it was). A chunk worker
   * reads a chunk into its block piece by piece, not knowing its length before the cut.
   */
  resize(block: RingBlock, n: number, keep = Math.min(n, block.bytes.length)): RingBlock | null {
    if (n < 1 || n > this.capacity) throw new RangeError(`ring block of ${n} bytes (capacity ${this.capacity})`);
    const last = this.blocks.length - 1;
    if (!block.live || this.blocks[last] !== block) throw new RangeError('only the newest live block can be resized');
    if (keep > Math.min(n, block.bytes.length)) throw new RangeError(`cannot keep ${keep} bytes of a block resized to ${n}`);
    const alone = this.first === last;
    // Free after the block: up to the oldest block when that lies after it (wrapped), else to the end.
    const head = this.blocks[this.first]!.start;
    const limit = !alone && head > block.start ? head : this.capacity;
    if (block.start + n <= limit) {
      this.liveBytes += n - block.bytes.length;
      block.bytes = this.buf.subarray(block.start, block.start + n);
      this.tail = block.start + n;
      return block;
    }
    if (alone) {
      this.buf.copyWithin(0, block.start, block.start + keep);
      this.liveBytes += n - block.bytes.length;
      block.start = 0;
      block.bytes = this.buf.subarray(0, n);
      this.tail = n;
      return block;
    }
    const moved = this.alloc(n);
    if (!moved) return null;
    moved.bytes.set(block.bytes.subarray(0, keep));
    this.free(block);
    return moved;
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
