import assert from 'node:assert/strict';
import { createCipheriv } from 'node:crypto';
import { copyFile, open } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { backup, backupSuite, jobSpec, type BackupEnv } from './helpers/backup-env.js';

const MiB = 1024 * 1024;

/**
 * `n` bytes that look random but are the same on every run (AES-CTR keystream of `label`).
 * With the fixed chunker seed below, chunk boundaries are the same on every run too, so
 * the byte counts asserted here are reproducible rather than a matter of luck.
 */
function pseudoRandom(label: string, n: number): Buffer {
  const key = Buffer.alloc(32);
  key.write(label);
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

describe('deduplication', () => {
  let src: string;
  let env: BackupEnv;
  backupSuite(
    async (s) => {
      const fh = await open(join(s, 'big.bin'), 'w');
      await fh.write(pseudoRandom('big file', 100 * MiB));
      await fh.close();
    },
    (suite) => ({ src, env } = suite),
    { chunkerSeed: Buffer.alloc(32, 7) },
  );
  before(async () => {
    const first = await backup(env, jobSpec(src));
    assert.equal(first.status, 'complete');
    assert.ok(first.stats.bytesNew >= 100 * MiB);
  });

  it('a copied 100 MiB file adds less than 1% new data', async () => {
    await copyFile(join(src, 'big.bin'), join(src, 'copy.bin'));
    const r = await backup(env, jobSpec(src));
    assert.equal(r.status, 'complete');
    assert.equal(r.stats.filesNew, 1);
    assert.equal(r.stats.bytesRead, 100 * MiB, 'only the copy is read');
    assert.ok(r.stats.bytesNew < 1 * MiB, `bytesNew ${r.stats.bytesNew}`);
  });

  it('a 1 MiB edit in the middle of it adds less than 5 MiB', async () => {
    const fh = await open(join(src, 'copy.bin'), 'r+');
    await fh.write(pseudoRandom('edit', MiB), 0, MiB, 50 * MiB + 12345);
    await fh.close();
    const r = await backup(env, jobSpec(src));
    assert.equal(r.status, 'complete');
    assert.equal(r.stats.filesChanged, 1);
    assert.ok(r.stats.bytesNew < 5 * MiB, `bytesNew ${r.stats.bytesNew}`);
    assert.ok(r.stats.bytesWritten < 5.5 * MiB, `bytesWritten ${r.stats.bytesWritten}`);
  });
});
