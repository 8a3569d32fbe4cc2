import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { Chunker, gearTable } from '../src/repo/chunker.js';
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

  it('reads chunks larger than a read piece into its ring and cuts them as the chunker cuts the whole file', { timeout: 60_000 }, async () => {
    // The default chunk sizes (pieces of 256 KiB, chunks of 256 KiB to 4 MiB) and a ring
    // of 512 KiB + 4 MiB: chunks grow in place, move when the ring's end is near, and
    // wait while held blobs fill it. Zeros give chunks of the largest size.
    const big = { minSize: 256 * 1024, avgBits: 20, maxSize: 4 * 1024 * 1024 };
    const gear = gearTable(randomBytes(32));
    const files = [
      Buffer.concat([randomBytes(9 * 1024 * 1024), Buffer.alloc(9 * 1024 * 1024), randomBytes(3 * 1024 * 1024 + 17)]),
      randomBytes(256 * 1024), // a whole piece: the end is found without a read past it
      Buffer.alloc(0),
      randomBytes(100),
    ];
    const pool = new WorkerPool({ encKey, idKey, gear, params: big, workers: 1, pendingBytes: 512 * 1024 });
    try {
      for (const [i, content] of files.entries()) {
        const path = join(dir, `pieces-${i}`);
        writeFileSync(path, content);
        const lengths: number[] = [];
        const plain: Buffer[] = [];
        const result = await pool.run(Buffer.from(path), {
          chunk: async (seq, _id, raw) => {
            lengths[seq] = raw;
            return true;
          },
          blob: async (seq, sealed, raw, isCompressed) => {
            await sleep(2);
            const opened = open(encKey, sealed, `blob ${seq}`);
            plain[seq] = Buffer.from(isCompressed ? decompressSync(opened, raw) : opened);
          },
        });
        assert.deepEqual(lengths, new Chunker(gear, big).chunkAll(content), `file ${i}: the same cuts`);
        assert.ok(Buffer.concat(plain).equals(content), `file ${i}: the blobs put back together are the file`);
        assert.equal(result.bytesRead, content.length);
        assert.equal(result.changed, false);
      }
    } finally {
      await pool.close();
    }
  });

  it('reads against the walk\'s lstat: says what changed since, and never follows what replaced the file', { timeout: 60_000 }, async () => {
    const pool = new WorkerPool({ encKey, idKey, gear: gearTable(randomBytes(32)), params, workers: 1 });
    const wantAll = { chunk: () => true, blob: () => {} };
    const identity = (p: string) => {
      const st = lstatSync(p, { bigint: true });
      return { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: st.ino, dev: st.dev };
    };
    try {
      const path = join(dir, 'expected');
      writeFileSync(path, randomBytes(50_000));
      const same = await pool.run(Buffer.from(path), wantAll, undefined, identity(path));
      assert.equal(same.changed, false, 'as the walk saw it');
      assert.equal(same.bytesRead, 50_000);
      assert.equal(same.after?.size, 50_000n);
      const walked = identity(path);
      writeFileSync(path, randomBytes(60_000)); // changed after the walk, before the read
      const grown = await pool.run(Buffer.from(path), wantAll, undefined, walked);
      assert.equal(grown.changed, true, 'read past the size the walk saw');
      assert.equal(grown.bytesRead, 60_000, 'and to its end');
      const stale = await pool.run(Buffer.from(path), wantAll, undefined, { ...identity(path), mtimeNs: 1n });
      assert.equal(stale.changed, true, 'another mtime than the walk saw');
      assert.equal((await pool.run(Buffer.from(path), wantAll)).changed, false, 'without the walk\'s lstat: the fstat at open');

      // The walk saw regular files; by the read the paths name other things.
      const link = join(dir, 'now-a-link');
      symlinkSync(path, link);
      await assert.rejects(pool.run(Buffer.from(link), wantAll, undefined, walked), { code: 'ELOOP' }, 'a symlink is not followed');
      const fifo = join(dir, 'now-a-fifo');
      assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
      // A FIFO with a writer attached: the read would wait for it, or get its bytes.
      const writer = spawn('sh', ['-c', `exec 3>"$1"; sleep 20`, 'sh', fifo], { stdio: 'ignore' });
      try {
        await assert.rejects(pool.run(Buffer.from(fifo), wantAll, undefined, walked), { code: 'EISDIR' }, 'a FIFO is refused, not waited on');
      } finally {
        writer.kill();
      }
      const folder = join(dir, 'now-a-dir');
      mkdirSync(folder);
      await assert.rejects(pool.run(Buffer.from(folder), wantAll, undefined, walked), { code: 'EISDIR' });
    } finally {
      await pool.close();
    }
  });

  it('answers chunks handled at once and chunks handled later in order, one handler at a time', { timeout: 60_000 }, async () => {
    const path = join(dir, 'in-order');
    const content = randomBytes(200 * 1024);
    writeFileSync(path, content);
    const gear = gearTable(randomBytes(32));
    const pool = new WorkerPool({ encKey, idKey, gear, params, workers: 1 });
    try {
      const calls: string[] = [];
      let running = false;
      const plain: Buffer[] = [];
      const result = await pool.run(Buffer.from(path), {
        // Every third chunk waits (as for a closed gate or full uploads), the others answer at once.
        chunk: (seq) => {
          assert.equal(running, false, `chunk ${seq} while an earlier one is still being handled`);
          calls.push(`c${seq}`);
          if (seq % 3 !== 0) return true;
          running = true;
          return sleep(5).then(() => {
            running = false;
            return true;
          });
        },
        // Some blobs are stored at once, some later (a large blob's write).
        blob: (seq, sealed, raw, isCompressed) => {
          const opened = open(encKey, sealed, `blob ${seq}`);
          const bytes = Buffer.from(isCompressed ? decompressSync(opened, raw) : opened);
          if (seq % 2 === 0) {
            plain[seq] = bytes;
            return;
          }
          return sleep(2).then(() => {
            plain[seq] = bytes;
          });
        },
      });
      const cuts = new Chunker(gear, params).chunkAll(content);
      assert.deepEqual(calls, cuts.map((_, i) => `c${i}`), 'each chunk handled once, in order');
      assert.ok(cuts.length > 6, `${cuts.length} chunks`);
      assert.ok(Buffer.concat(plain).equals(content), 'every blob stored before the file ends');
      assert.equal(result.bytesRead, content.length);
    } finally {
      await pool.close();
    }
  });

  it('keeps the process alive while a listing is owed, when a file job on the same thread ends first', { timeout: 60_000 }, () => {
    // A process whose only pending work is the listing: it must wait for it, not exit
    // because the thread's last file job ended (the thread lists between reads).
    const big = join(dir, 'big');
    mkdirSync(big);
    for (let i = 0; i < 4000; i++) writeFileSync(join(big, `f${i}`), '');
    writeFileSync(join(dir, 'small'), 'small');
    const poolModule = new URL('../src/repo/worker-pool.js', import.meta.url).href;
    const chunkerModule = new URL('../src/repo/chunker.js', import.meta.url).href;
    const script = `
      const { WorkerPool } = await import(${JSON.stringify(poolModule)});
      const { gearTable } = await import(${JSON.stringify(chunkerModule)});
      const pool = new WorkerPool({ encKey: Buffer.alloc(32, 1), idKey: Buffer.alloc(32, 2), gear: gearTable(Buffer.alloc(32, 3)),
        params: { minSize: 1024, avgBits: 12, maxSize: 16384 }, workers: 1, pendingBytes: 65536 });
      const file = pool.run(Buffer.from(${JSON.stringify(join(dir, 'small'))}), { chunk: async () => false, blob: async () => {} });
      await new Promise((resolve) => setImmediate(resolve)); // the file goes out first (its message leaves in an immediate)
      const listing = pool.list(Buffer.from(${JSON.stringify(big)}));
      await file;
      console.log('listed', (await listing).entries.length);
      await pool.close();
    `;
    const scriptFile = join(dir, 'owed-listing.mjs');
    writeFileSync(scriptFile, script);
    const r = spawnSync(process.execPath, [scriptFile], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.stderr, '');
    assert.equal(r.stdout.trim(), 'listed 4000');
    assert.equal(r.status, 0);
  });

  it('lists the directories asked for together in walk order, whatever order they were asked in', async () => {
    // Walk order: names byte by byte with "/" before every other byte ("a/x" before "a-b").
    const root = join(dir, 'order');
    for (const d of ['a', 'a/x', 'a/x/y', 'a-b', 'b', ' c']) mkdirSync(join(root, d), { recursive: true });
    const pool = new WorkerPool({ encKey, idKey, gear: gearTable(randomBytes(32)), params, workers: 1, pendingBytes: 32 * 1024 });
    try {
      const asked = ['b', 'a-b', 'a/x/y', ' c', 'a', 'a/x'];
      const listed: string[] = [];
      await Promise.all(asked.map((d) => pool.list(Buffer.from(join(root, d))).then(() => listed.push(d))));
      assert.deepEqual(listed, [' c', 'a', 'a/x', 'a/x/y', 'a-b', 'b']);
    } finally {
      await pool.close();
    }
  });

  it('lists a directory too large to read whole one entry at a time, within a small heap', { timeout: 60_000 }, async () => {
    // Read whole, 50k entries (an object and a Buffer each at once) took this 12 MiB heap
    // past its limit: the thread ended and the listing failed.
    const many = join(dir, 'many');
    mkdirSync(many);
    for (let i = 0; i < 50_000; i++) closeSync(openSync(join(many, `file-number-${i}`), 'w'));
    mkdirSync(join(many, 'sub'));
    writeFileSync(join(many, 'data'), 'x'.repeat(1234));
    const pool = new WorkerPool({ encKey, idKey, gear: gearTable(randomBytes(32)), params, workers: 1, heapMb: 12 });
    try {
      const { entries, digest } = await pool.list(Buffer.from(many));
      assert.deepEqual(entries.map((e) => e.name.toString()).sort(), readdirSync(many).sort());
      const byName = new Map(entries.map((e) => [e.name.toString(), e]));
      for (const name of ['sub', 'data', 'file-number-0', 'file-number-49999']) {
        const want = lstatSync(join(many, name), { bigint: true });
        const got = byName.get(name)!;
        assert.equal(got.error, null);
        assert.deepEqual([got.stat!.ino, got.stat!.size, got.stat!.mode, got.stat!.mtimeNs], [want.ino, want.size, want.mode, want.mtimeNs]);
        assert.equal(got.direntIsDir, name === 'sub');
      }
      assert.ok(digest);
    } finally {
      await pool.close();
    }
  });

  it('gives an entry whose lstat fails its error, and the entries around it their stats', async () => {
    // A directory at a path of 4050 bytes can be read; an entry of 100 bytes in it is past
    // PATH_MAX (4096), so its lstat fails with ENAMETOOLONG. Built and cleaned up through
    // the working directory, which takes relative paths.
    const root = join(dir, 'deep');
    mkdirSync(root);
    const segments: string[] = [];
    let length = root.length;
    while (length + 1 + 250 <= 4050) (segments.push('d'.repeat(250)), (length += 251));
    segments.push('e'.repeat(4050 - length - 1));
    const deep = [root, ...segments].join('/');
    const longName = 'x'.repeat(100);
    const cwd = process.cwd();
    const inDeep = (f: () => void) => {
      process.chdir(root);
      try {
        for (const s of segments) process.chdir(s);
        f();
      } finally {
        process.chdir(cwd);
      }
    };
    process.chdir(root);
    try {
      for (const s of segments) (mkdirSync(s), process.chdir(s));
    } finally {
      process.chdir(cwd);
    }
    inDeep(() => {
      writeFileSync('a', 'one');
      writeFileSync(longName, 'two');
      writeFileSync('z', 'three');
    });
    const pool = new WorkerPool({ encKey, idKey, gear: gearTable(randomBytes(32)), params, workers: 1 });
    try {
      const { entries, digest } = await pool.list(Buffer.from(deep));
      const byName = new Map(entries.map((e) => [e.name.toString(), e]));
      assert.equal(entries.length, 3);
      assert.equal(byName.get(longName)!.stat, null);
      assert.equal(byName.get(longName)!.error?.code, 'ENAMETOOLONG');
      assert.equal(byName.get('a')!.stat!.size, 3n);
      assert.equal(byName.get('z')!.stat!.size, 5n);
      assert.equal(byName.get('a')!.error, null);
      // A listing with a failed entry is never taken for an unchanged one.
      assert.equal(digest, null);
    } finally {
      await pool.close();
      inDeep(() => unlinkSync(longName)); // rmSync in `after` goes by whole paths
    }
  });
});
