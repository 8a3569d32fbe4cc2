import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { LocalStore } from '../src/store/local-store.js';
import { runStoreContract } from './helpers/store-contract.js';

runStoreContract('local', async () => {
  const dir = await fsp.mkdtemp(path.join(tmpdir(), 'nj-store-'));
  return { store: new LocalStore(path.join(dir, 'repo')), cleanup: () => fsp.rm(dir, { recursive: true, force: true }) };
});

describe('LocalStore specifics', () => {
  it('ignores leftover temp files in list and removes old ones on request', async () => {
    const dir = await fsp.mkdtemp(path.join(tmpdir(), 'nj-store-'));
    try {
      const store = new LocalStore(dir);
      await store.write('data/ab/real', Buffer.from('x'));
      await fsp.writeFile(path.join(dir, 'data', 'ab', '.nj-tmp-deadbeef'), 'partial');
      const names: string[] = [];
      for await (const o of store.list('')) names.push(o.name);
      assert.deepEqual(names, ['data/ab/real']);
      assert.equal(await store.removeTempFiles(new Date(0)), 0);
      assert.equal(await store.removeTempFiles(new Date(8.64e15)), 1);
      assert.deepEqual(await fsp.readdir(path.join(dir, 'data', 'ab')), ['real']);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });

  it('location names the directory', () => {
    assert.equal(new LocalStore('/tmp/x').location, 'local:/tmp/x');
  });
});
