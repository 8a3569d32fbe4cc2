#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner.
// Node 20 does not expand globs itself, and pointing it at a directory would also load
// helper modules as tests, so the list is built here. Extra arguments are passed on
// (e.g. `npm test -- --test-name-pattern=config`). A test that hangs fails after 5 minutes
// instead of stalling CI.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const testDir = join(root, 'dist', 'test');
const files = readdirSync(testDir, { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.test.js'))
  .sort()
  .map((f) => join(testDir, f));
const args = ['--test', '--test-concurrency=2', '--test-timeout=300000', ...process.argv.slice(2), ...files];
const result = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(result.status ?? 1);
