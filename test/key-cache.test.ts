import assert from 'node:assert/strict';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileKeyCache, fileSnapshotCache } from '../src/node/key-cache.js';
import { IntegrityError, WrongPassphraseError } from '../src/repo/errors.js';
import { Repository, type RepoOptions } from '../src/repo/repository.js';
import { LocalStore } from '../src/store/local-store.js';
import { FakeClock } from './helpers/fake-clock.js';
import { removeDir, tempDir } from './helpers/fixture-tree.js';

const opts = (): RepoOptions => ({ clock: new FakeClock('2026-11-01T00:00:00Z'), workers: 1, kdf: { N: 1024, r: 8, p: 1 } });

describe('the node key and snapshot caches', () => {
  let dir: string;
  let passFile: string;
  before(async () => {
    dir = await tempDir();
    passFile = join(dir, 'passphrase');
    await writeFile(passFile, 'right\n', { mode: 0o600 });
  });
  after(() => removeDir(dir));

  it('keeps the keys beside the passphrase file (0600) and opens without a key object from then on', async () => {
    const store = new LocalStore(join(dir, 'repo'));
    const cache = () => fileKeyCache(passFile, 'right', store.location);
    const created = await Repository.init(store, 'right', { ...opts(), keyCache: cache() });
    const id = created.id;
    await created.close();
    const files = (await readdir(dir)).filter((f) => f.startsWith('passphrase.keys-'));
    assert.equal(files.length, 1, 'one cache file beside the passphrase');
    assert.equal((await stat(join(dir, files[0]!))).mode & 0o777, 0o600);
    // Without its key objects the repository opens only through the cache: proof it is used.
    await rm(join(dir, 'repo', 'keys'), { recursive: true });
    const reopened = await Repository.open(store, 'right', { ...opts(), keyCache: cache() });
    assert.equal(reopened.id, id);
    await reopened.close();
    await assert.rejects(Repository.open(store, 'right', opts()), WrongPassphraseError, 'no cache: the key objects are needed');
    await assert.rejects(
      Repository.open(store, 'wrong', { ...opts(), keyCache: fileKeyCache(passFile, 'wrong', store.location) }),
      WrongPassphraseError,
      'another passphrase never uses the cached keys',
    );
  });

  it('ignores keys cached for another repository at the same place and derives the right ones', async () => {
    const root = join(dir, 'repo2');
    const store = new LocalStore(root);
    const cache = () => fileKeyCache(passFile, 'right', store.location);
    await (await Repository.init(store, 'right', { ...opts(), keyCache: cache() })).close();
    // The repository is replaced by a new one (new keys) at the same location.
    await rm(root, { recursive: true });
    const fresh = await Repository.init(new LocalStore(root), 'right', opts());
    const freshId = fresh.id;
    await fresh.close();
    const before = await cache().load();
    const reopened = await Repository.open(new LocalStore(root), 'right', { ...opts(), keyCache: cache() });
    assert.equal(reopened.id, freshId);
    await reopened.close();
    const after = await cache().load();
    assert.ok(before && after && !before.encKey.equals(after.encKey), 'the cache now holds the new repository keys');
  });

  it('keeps the snapshots read beside the passphrase file (0600): a reopened repository lists them without reading them', async () => {
    const root = join(dir, 'repo3');
    const store = new LocalStore(root);
    const snapshotCache = () => fileSnapshotCache(passFile, store.location);
    const repo = await Repository.init(store, 'right', { ...opts(), snapshotCache: snapshotCache() });
    const tree = await repo.saveTree({ entries: [] });
    const snap = await repo.saveSnapshot({ tree, host: 'h', job: 'j', target: 't', source: '/s' });
    assert.deepEqual((await repo.listSnapshots()).map((s) => s.id), [snap.id]);
    await repo.close();
    const files = (await readdir(dir)).filter((f) => f.startsWith('passphrase.snapshots-'));
    assert.equal(files.length, 1, 'one cache file beside the passphrase');
    assert.equal((await stat(join(dir, files[0]!))).mode & 0o777, 0o600);
    // The object damaged in the store: a listing that read it would fail.
    await writeFile(join(root, 'snapshots', snap.id), 'damaged');
    const reopened = await Repository.open(store, 'right', { ...opts(), snapshotCache: snapshotCache() });
    assert.deepEqual((await reopened.listSnapshots()).map((s) => s.job), ['j']);
    await reopened.close();
    const uncached = await Repository.open(store, 'right', opts());
    await assert.rejects(uncached.listSnapshots(), IntegrityError);
    await uncached.close();
  });
});
