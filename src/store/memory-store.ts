import {
  checkRange,
  NotFoundError,
  ObjectExistsError,
  StoreError,
  validateObjectName,
  validatePrefix,
  type ByteRange,
  type ObjectInfo,
  type Store,
} from './store.js';

/**
 * A Store in process memory, for tests and dry runs. Data is copied on write and on
 * read, so callers may reuse their buffers. Operations are synchronous underneath, so
 * concurrent writes of one name resolve with exactly one winner.
 */
export class MemoryStore implements Store {
  readonly location: string;
  private readonly objects = new Map<string, Buffer>();
  private closed = false;

  constructor(location = 'memory:') {
    this.location = location;
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    this.ensureOpen();
    validatePrefix(prefix);
    const names = [...this.objects.keys()].filter((n) => n.startsWith(prefix));
    for (const name of names) {
      const data = this.objects.get(name);
      if (data) yield { name, size: data.length };
    }
  }

  async stat(name: string): Promise<ObjectInfo | null> {
    this.ensureOpen();
    validateObjectName(name);
    const data = this.objects.get(name);
    return data ? { name, size: data.length } : null;
  }

  async read(name: string, range?: ByteRange): Promise<Buffer> {
    this.ensureOpen();
    validateObjectName(name);
    const data = this.objects.get(name);
    if (!data) throw new NotFoundError(this.location, name);
    if (!range) return Buffer.from(data);
    checkRange(this.location, name, range, data.length);
    return Buffer.from(data.subarray(range.offset, range.offset + range.length));
  }

  async write(name: string, data: Buffer): Promise<void> {
    this.ensureOpen();
    validateObjectName(name);
    if (this.objects.has(name)) throw new ObjectExistsError(this.location, name);
    this.objects.set(name, Buffer.from(data));
  }

  async delete(name: string): Promise<void> {
    this.ensureOpen();
    validateObjectName(name);
    this.objects.delete(name);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** Test hook: replaces an object's bytes in place (simulates damage on the medium). */
  tamper(name: string, mutate: (data: Buffer) => void): void {
    const data = this.objects.get(name);
    if (!data) throw new NotFoundError(this.location, name);
    mutate(data);
  }

  private ensureOpen(): void {
    if (this.closed) throw new StoreError(`store ${this.location} is closed`, { code: 'NJ_STORE_CLOSED', permanent: true });
  }
}
