#!/bin/sh
':' //; exec node --v8-pool-size=1 "$0" "$@"
// The line above is for sh (it runs node on this file with the flag; `env -S` would be
// shorter but BusyBox's env lacks -S); for JavaScript it is a string and a comment.
// One V8 background thread, not one per core: the chunk worker threads already keep the
// cores busy, and V8's helpers for three small heaps (parallel scavenges, concurrent
// marking and compiling) only competed with them. Bench, 2 cores: first backup ~6% faster
// and ~8 MiB smaller, unchanged re-run ~5% faster. `node bin/nightjar.js` works without it.
import { limitHeapGrowth } from '../dist/src/node/heap-budget.js';
import { main } from '../dist/src/node/main.js';

limitHeapGrowth();
process.exitCode = await main(process.argv.slice(2));
