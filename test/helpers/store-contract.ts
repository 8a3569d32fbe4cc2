import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { NotFoundError, ObjectExistsError, StoreError, type ObjectInfo, type Store } from '../../src/store/store.js';

async function collect(it: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const o of it) out.push(o);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * The contract every Store must pass (local, memory, peer node, S3). `makeStore` returns
 * a fresh, empty store and a cleanup function; it is called once per suite.
 */
export function runStoreContract(
  name: string,
  makeStore: () => Promise<{ store: Store; cleanup(): Promise<void> }>,
): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let cleanup: () => Promise<void>;
    let n = 0;
    const fresh = (dir = 'data/ab') => `${dir}/obj${++n}-${randomBytes(4).toString('hex')}`;

    before(async () => {
      ({ store, cleanup } = await makeStore());
    });
    after(async () => {
      await store.close();
      await cleanup();
    });

    it('has a location for messages', () => {
      assert.equal(typeof store.location, 'string');
      assert.ok(store.location.length > 0);
    });

    it('reads back what was written, byte-exact', async () => {
      const data = randomBytes(100_000);
      const nm = fresh();
      await store.write(nm, data);
      assert.deepEqual(await store.read(nm), data);
    });

    it('stores empty objects and top-level names', async () => {
      await store.write('config', Buffer.alloc(0));
      assert.equal((await store.read('config')).length, 0);
      assert.deepEqual(await store.stat('config'), { name: 'config', size: 0 });
    });

    it('reads ranges, including empty and final ranges', async () => {
      const data = randomBytes(4096);
      const nm = fresh();
      await store.write(nm, data);
      assert.deepEqual(await store.read(nm, { offset: 10, length: 100 }), data.subarray(10, 110));
      assert.deepEqual(await store.read(nm, { offset: 4000, length: 96 }), data.subarray(4000));
      assert.equal((await store.read(nm, { offset: 5, length: 0 })).length, 0);
    });

    it('rejects ranges outside the object with a permanent error', async () => {
      const nm = fresh();
      await store.write(nm, randomBytes(100));
      await assert.rejects(store.read(nm, { offset: 50, length: 51 }), (e: unknown) => {
        assert.ok(e instanceof StoreError);
        assert.equal(e.code, 'NJ_STORE_RANGE');
        assert.equal(e.permanent, true);
        return true;
      });
      await assert.rejects(store.read(nm, { offset: -1, length: 1 }), StoreError);
    });

    it('stat returns the size, or null when missing', async () => {
      const nm = fresh();
      await store.write(nm, randomBytes(1234));
      assert.deepEqual(await store.stat(nm), { name: nm, size: 1234 });
      assert.equal(await store.stat(fresh()), null);
    });

    it('read of a missing object throws NotFoundError (permanent, NJ_STORE_NOT_FOUND)', async () => {
      await assert.rejects(store.read(fresh('index')), (e: unknown) => {
        assert.ok(e instanceof NotFoundError);
        assert.equal(e.code, 'NJ_STORE_NOT_FOUND');
        assert.equal(e.permanent, true);
        return true;
      });
      await assert.rejects(store.read('nosuchdir/x', { offset: 0, length: 1 }), NotFoundError);
    });

    it('is write-once: a second write of a name throws ObjectExistsError and keeps the first', async () => {
      const nm = fresh();
      const first = Buffer.from('first');
      await store.write(nm, first);
      await assert.rejects(store.write(nm, Buffer.from('second')), (e: unknown) => {
        assert.ok(e instanceof ObjectExistsError);
        assert.equal(e.code, 'NJ_STORE_EXISTS');
        assert.equal(e.permanent, true);
        return true;
      });
      assert.deepEqual(await store.read(nm), first);
    });

    it('concurrent writes of the same name: exactly one wins, the object is one whole payload', async () => {
      const nm = fresh();
      const payloads = Array.from({ length: 8 }, () => randomBytes(64 * 1024));
      const results = await Promise.allSettled(payloads.map((p) => store.write(nm, p)));
      const won = results.filter((r) => r.status === 'fulfilled').length;
      assert.equal(won, 1);
      for (const r of results) if (r.status === 'rejected') assert.ok(r.reason instanceof ObjectExistsError, String(r.reason));
      const got = await store.read(nm);
      assert.ok(payloads.some((p) => p.equals(got)));
    });

    it('concurrent writes of different names all succeed', async () => {
      const names = Array.from({ length: 20 }, () => fresh('data/cd'));
      await Promise.all(names.map((nm, i) => store.write(nm, Buffer.from(String(i)))));
      for (const [i, nm] of names.entries()) assert.equal((await store.read(nm)).toString(), String(i));
    });

    it('delete removes an object and is idempotent', async () => {
      const nm = fresh();
      await store.write(nm, Buffer.from('x'));
      await store.delete(nm);
      assert.equal(await store.stat(nm), null);
      await assert.rejects(store.read(nm), NotFoundError);
      await store.delete(nm);
      // The name can be written again after deletion.
      await store.write(nm, Buffer.from('y'));
      assert.equal((await store.read(nm)).toString(), 'y');
    });

    it('lists by prefix, with sizes, across many objects and nested names', async () => {
      const base = `list${randomBytes(3).toString('hex')}`;
      const want: ObjectInfo[] = [];
      for (let i = 0; i < 300; i++) {
        const sub = (i % 16).toString(16).padStart(2, '0');
        const nm = `${base}/${sub}/o${i.toString().padStart(4, '0')}`;
        want.push({ name: nm, size: i });
      }
      const other = { name: `${base}x/o`, size: 3 };
      await Promise.all([...want, other].map((o) => store.write(o.name, randomBytes(o.size))));
      want.sort((a, b) => (a.name < b.name ? -1 : 1));
      assert.deepEqual(await collect(store.list(`${base}/`)), want);
      assert.deepEqual(
        await collect(store.list(`${base}/0a/`)),
        want.filter((o) => o.name.startsWith(`${base}/0a/`)),
      );
      // A partial segment matches as a string prefix.
      assert.deepEqual(
        await collect(store.list(`${base}/0`)),
        want.filter((o) => o.name.startsWith(`${base}/0`)),
      );
      assert.deepEqual(await collect(store.list(base)), [...want, other].sort((a, b) => (a.name < b.name ? -1 : 1)));
      assert.deepEqual(await collect(store.list('nothing-here/')), []);
      const all = await collect(store.list(''));
      assert.ok(all.some((o) => o.name === 'config'));
      assert.ok(all.length >= 301);
    });

    it('rejects invalid names with a permanent NJ_STORE_INVALID_NAME error', async () => {
      const bad = ['', '/abs', '../x', 'a/../b', 'a//b', 'a/./b', 'nul\0x', 'a/', '.hidden', 'a/.nj-tmp-x', 'back\\slash'];
      for (const nm of bad) {
        for (const op of [() => store.write(nm, Buffer.from('x')), () => store.read(nm), () => store.stat(nm), () => store.delete(nm)]) {
          await assert.rejects(op(), (e: unknown) => {
            assert.ok(e instanceof StoreError, `${JSON.stringify(nm)}: ${String(e)}`);
            assert.equal(e.code, 'NJ_STORE_INVALID_NAME');
            assert.equal(e.permanent, true);
            return true;
          });
        }
      }
      await assert.rejects(collect(store.list('../')), StoreError);
    });

    it('does not keep references to the caller\'s buffers', async () => {
      const nm = fresh();
      const data = Buffer.from('original');
      await store.write(nm, data);
      data.fill(0);
      const got = await store.read(nm);
      assert.equal(got.toString(), 'original');
      got.fill(1);
      assert.equal((await store.read(nm)).toString(), 'original');
    });
  });
}
