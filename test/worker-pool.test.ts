import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { gearTable } from '../src/repo/chunker.js';
import { decompressSync } from '../src/repo/compress.js';
import { blobId, open } from '../src/repo/crypto.js';
import { WorkerPool } from '../src/repo/worker-pool.js';

describe('WorkerPool', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nj-pool-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const encKey = randomBytes(32);
  const idKey = randomBytes(32);
  // Small chunks and a ring of 32 KiB, so a 1 MiB file passes through the ring many times.
  const params = { minSize: 1024, avgBits: 12, maxSize: 16 * 1024 };

  it('seals every wanted chunk in its ring and goes on while the main thread holds sealed blobs', { timeout: 60_000 }, async () => {
    // Half text-like (compresses), half random (stored as is): both sealing paths.
    const text = Buffer.from('nightjar keeps backups inside the hours you allow. '.repeat(11_000)).subarray(0, 512 * 1024);
    const content = Buffer.concat([text, randomBytes(512 * 1024)]);
    const path = join(dir, 'mixed');
    writeFileSync(path, content);
    const pool = new WorkerPool({ encKey, idKey, gear: gearTable(randomBytes(32)), params, workers: 1, pendingBytes: 32 * 1024 });
    try {
      const ids: string[] = [];
      const plain: Buffer[] = [];
      let compressed = 0;
      let heldAtOnce = 0;
      let held = 0;
      await pool.run(Buffer.from(path), {
        chunk: async (seq, id) => {
          ids[seq] = id;
          return true;
        },
        blob: async (seq, sealed, raw, isCompressed) => {
          // Hold the blob a while, as a pack upload or the bandwidth gate would: the
          // thread must stop reading when its ring is full and go on once blobs are freed.
          heldAtOnce = Math.max(heldAtOnce, ++held);
          await sleep(1);
          const opened = open(encKey, sealed, `blob ${seq}`);
          const bytes = isCompressed ? decompressSync(opened, raw) : opened;
          assert.equal(bytes.length, raw);
          assert.equal(blobId(idKey, bytes), ids[seq], `blob ${seq} decrypts to its id`);
          plain[seq] = Buffer.from(bytes);
          if (isCompressed) compressed++;
          held--;
        },
      });
      assert.ok(ids.length > 64, `${ids.length} chunks: the ring filled and emptied many times`);
      assert.ok(heldAtOnce > 1, 'several sealed blobs were held at once');
      assert.ok(compressed > 0 && compressed < ids.length, `${compressed} of ${ids.length} blobs compressed`);
      assert.ok(Buffer.concat(plain).equals(content), 'the blobs put back together are the file');
    } finally {
      await pool.close();
    }
  });
});
