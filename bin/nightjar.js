#!/usr/bin/env node
import { limitHeapGrowth } from '../dist/src/node/heap-budget.js';
import { main } from '../dist/src/node/main.js';

limitHeapGrowth();
process.exitCode = await main(process.argv.slice(2));
