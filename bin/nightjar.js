#!/bin/sh
':' //; case "${NODE_EXTRA_CA_CERTS-}|${NODE_OPTIONS-}" in '|'* | *openssl-ca*) ;; *) export NIGHTJAR_EXTRA_CA_CERTS="$NODE_EXTRA_CA_CERTS"; unset NODE_EXTRA_CA_CERTS ;; esac
':' //; [ -n "${MALLOC_ARENA_MAX-}" ] || export MALLOC_ARENA_MAX=2 NIGHTJAR_MALLOC_ARENA_MAX=2
':' //; exec node --v8-pool-size=1 --max-semi-space-size=2 "$0" "$@"
// The lines above are for sh (they start node on this file; `env -S` would be
// shorter but BusyBox's env lacks -S); for JavaScript each is a string and a comment.
// NODE_EXTRA_CA_CERTS is handed over under another name: node would load it while it
// boots (~50 ms, ~2 MiB), and most commands never open a TLS connection (see
// src/node/extra-ca.ts; not with --use-openssl-ca, whose roots only node knows).
// One V8 background thread, not one per core: the chunk worker threads already keep the
// cores busy, and V8's helpers for three small heaps (parallel scavenges, concurrent
// marking and compiling) only competed with them. Bench, 2 cores: first backup ~6% faster
// and ~8 MiB smaller, unchanged re-run ~5% faster. Semi-spaces of at most 2 MiB: what
// limitHeapGrowth (src/node/heap-budget.ts) aims for, held even when a worker thread's
// start lets one collection grow them. `node bin/nightjar.js` works without both flags.
// Two glibc malloc arenas, not one per thread: the threads' freed memory is reused across
// them instead of staying resident in each (bench, small profile: ~5 MiB less at the peak).
import { takeDeferredExtraCa } from '../dist/src/node/extra-ca.js';
import { limitHeapGrowth } from '../dist/src/node/heap-budget.js';
import { main } from '../dist/src/node/main.js';

takeDeferredExtraCa();
// glibc read the arena setting at start; hooks and other children get the environment as it was.
if (process.env.NIGHTJAR_MALLOC_ARENA_MAX) {
  delete process.env.MALLOC_ARENA_MAX;
  delete process.env.NIGHTJAR_MALLOC_ARENA_MAX;
}
limitHeapGrowth();
process.exitCode = await main(process.argv.slice(2));
