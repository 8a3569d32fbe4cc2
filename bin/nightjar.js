#!/bin/sh
':' //; export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-2}"; exec node --v8-pool-size=1 "$0" "$@"
// The line above is for sh: it runs node on this file with these settings (`env -S` would
// be shorter, but BusyBox's env lacks -S); for JavaScript it is a string and a comment.
// - One V8 background thread, not one per core: the chunk threads keep the cores busy, and
//   V8's helpers for three small heaps (parallel scavenges, concurrent marking and
//   compiling) only competed with them. Bench, 2 cores: first backup ~6% faster and ~8 MiB
//   smaller, unchanged re-run ~5% faster.
// - Two malloc arenas (unless set already), not up to 8 per core: each thread that mallocs
//   (chunk threads, libuv's, V8's) kept an arena of its own. Bench: peak RSS of a first
//   backup −9 MiB (small profile) and −6 to −14 MiB (large), no slower.
// `node bin/nightjar.js` works too, without them.
import { limitHeapGrowth } from '../dist/src/node/heap-budget.js';
import { main } from '../dist/src/node/main.js';

limitHeapGrowth();
process.exitCode = await main(process.argv.slice(2));
