import { PerformanceObserver } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import type { Worker } from 'node:worker_threads';

/** Largest semi-space (of two) of the main thread's young generation. */
const SEMI_SPACE_BYTES = 2 * 1024 * 1024;
/** After a full collection, the old generation may grow to (1 + this/100) × what is live. */
const OLD_GROWING_PERCENT = 50;

/**
 * V8 sizes a heap for throughput: the young generation grows to 2 × 16 MiB and the old one
 * to up to 4× what is live before the next full collection. A backup's main thread makes
 * lots of short-lived garbage (promises, small buffers), so that is ~60 MiB of dead objects
 * kept resident. Measured on the bench's small profile: 8 MiB semi-spaces and a 2× growing
 * factor cut peak RSS by ~40 MiB for ~1% more time; 1.5× against 2×, ~5 MiB less (the
 * flag is the process's: worker threads' heaps follow it too). V8 reads both flags when it
 * resizes, so setting them at start-up works; the young generation's size can't be capped
 * that way, so its growth is switched off once it reaches the size wanted. 4 MiB semi-spaces
 * against 8: ~8 MiB less on both bench profiles, no slower. 2 MiB against 4: ~7 MiB less on
 * the small profile (~2 on the large), ~2–4% more time (more scavenges; before chunk
 * answers stopped making a promise each, more was promoted and the old generation grew by
 * more than that saved).
 *
 * Every new isolate (a worker thread starting) sets the growth factor back to at least 2
 * (V8's Heap::ConfigureHeap), which let one run in five grow the young generation to
 * 2 × 16 MiB after all: so it is switched off again after each collection and as soon as a
 * worker thread is up. That still let a collection right after the start grow it once
 * (3 runs in 40 of heap-budget.test.ts's program), so the launcher (bin/nightjar.js) also
 * starts node with --max-semi-space-size=2, a hard cap only start-up can set.
 */
export function limitHeapGrowth(): void {
  setFlagsFromString(`--heap-growing-percent=${OLD_GROWING_PERCENT}`);
  let capped = false;
  const cap = () => setFlagsFromString('--semi-space-growth-factor=1');
  // The young generation only grows in a collection: look after each one until it is big
  // enough (90%: V8 rounds a semi-space to whole pages).
  const observer = new PerformanceObserver(() => {
    if (!capped) {
      const young = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
      if (young && young.space_size < 2 * SEMI_SPACE_BYTES * 0.9) return;
      capped = true;
    }
    cap();
  });
  observer.observe({ entryTypes: ['gc'] });
  process.on('worker', (worker: Worker) => {
    worker.once('online', () => {
      if (capped) cap();
    });
  });
}
