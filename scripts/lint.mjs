#!/usr/bin/env node
// Project rules that tsc does not check. Today: only src/node/clock.ts may read the wall
// clock (`Date.now()` or a bare `new Date()`); everything else gets a Clock, so schedules
// are testable with an injected one.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const allowed = new Set(['src/node/clock.ts']);
const wallClock = /\bDate\.now\s*\(|\bnew\s+Date\s*\(\s*\)/;
const problems = [];

function walk(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path);
    else if (path.endsWith('.ts')) check(path);
  }
}

function check(path) {
  const rel = relative(root, path);
  if (allowed.has(rel)) return;
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '');
      if (wallClock.test(code)) problems.push(`${rel}:${i + 1}: reads the wall clock; take a Clock instead (src/node/clock.ts)`);
    });
}

walk(join(root, 'src'));
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
