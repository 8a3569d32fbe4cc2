/**
 * `npm run bench:throttle`: uploads for 20 s at 256 KiB/s, 1 MiB/s and 10 MiB/s through
 * the throttle decorator and a real `node:` store (undici, paced request bodies) to an
 * HTTP sink on 127.0.0.1 that speaks the storage protocol's PUT and records when each
 * piece of body arrives. Two writers upload concurrently (as a run's pack uploads do).
 * Prints, per rate: the achieved/limit ratio over 10 s windows (sliding, after the first
 * second) and the peak/limit ratio over any 100 ms window (after the first second).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../src/node/clock.js';
import { NodeStore } from '../src/store/node-store.js';
import { chainThrottle, throttleStore } from '../src/store/throttled-store.js';
import { TokenBucket } from '../src/store/token-bucket.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const SECONDS = Number(process.env.THROTTLE_BENCH_SECONDS ?? 20);

interface Arrival {
  at: number;
  bytes: number;
}

async function main(): Promise<void> {
  const arrivals: Arrival[] = [];
  const server = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => arrivals.push({ at: performance.now(), bytes: chunk.length }));
    req.on('end', () => {
      res.writeHead(req.method === 'PUT' ? 201 : 404, { 'content-length': '0' });
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  console.log(`throttle bench: ${SECONDS} s per rate, 2 concurrent writers, node: store to ${url}`);
  console.log('rate        10 s achieved/limit (min..max)   100 ms peak/limit   slices');
  for (const rate of [256 * KiB, 1 * MiB, 10 * MiB]) {
    arrivals.length = 0;
    const bucket = new TokenBucket(systemClock, rate);
    let slices = 0;
    const inner = new NodeStore(url, 'bench-token-0123456789abcdef', null, 'bench', { clock: systemClock });
    const store = throttleStore(inner, chainThrottle(() => [bucket], { onSent: () => slices++ }));
    const t0 = performance.now();
    const objectBytes = Math.max(256 * KiB, Math.min(8 * MiB, rate * 2));
    const writer = async (w: number) => {
      for (let i = 0; performance.now() - t0 < SECONDS * 1000; i++) await store.write(`data/w${w}-${i}`, Buffer.alloc(objectBytes, i));
    };
    await Promise.all([writer(0), writer(1)]);
    const end = Math.min(performance.now(), t0 + SECONDS * 1000);
    await store.close();
    const inWindow = (from: number, to: number) => {
      let sum = 0;
      for (const a of arrivals) if (a.at >= from && a.at < to) sum += a.bytes;
      return sum;
    };
    let min = Infinity;
    let max = 0;
    for (let s = t0 + 1000; s + 10_000 <= end; s += 100) {
      const r = inWindow(s, s + 10_000) / (rate * 10);
      min = Math.min(min, r);
      max = Math.max(max, r);
    }
    // 100 ms peaks: a two-pointer sweep over the arrivals after the first second.
    const after = arrivals.filter((a) => a.at >= t0 + 1000 && a.at < end);
    let peak = 0;
    let lo = 0;
    let sum = 0;
    for (let hi = 0; hi < after.length; hi++) {
      sum += after[hi]!.bytes;
      while (after[hi]!.at - after[lo]!.at >= 100) sum -= after[lo++]!.bytes;
      peak = Math.max(peak, sum);
    }
    const label = rate >= MiB ? `${rate / MiB} MiB/s` : `${rate / KiB} KiB/s`;
    console.log(`${label.padEnd(12)}${`${min.toFixed(3)}..${max.toFixed(3)}`.padEnd(33)}${(peak / (rate * 0.1)).toFixed(3).padEnd(20)}${slices}`);
  }
  server.close();
}

await main();
