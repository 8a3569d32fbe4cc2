import { createHash, randomBytes } from 'node:crypto';
import { readFile, rename, unlink, writeFile } from 'node:fs/promises';
import type { MasterKeys } from '../repo/crypto.js';
import type { KeyCache, SnapshotCache } from '../repo/repository.js';

/**
 * The node's key cache for one target: the master keys its passphrase unsealed, in a file
 * beside the passphrase file (`<passphrase file>.keys-<hash of the location>`, mode 0600).
 * Whoever can read it can read the passphrase file next to it, so it guards the same
 * secret the same way, and it saves the scrypt key derivation (~0.1 s) on every command.
 * An entry names a hash of the passphrase and the location, so another passphrase or
 * another repository never uses it; the repository checks the keys against its config.
 */
export function fileKeyCache(passphraseFile: string, passphrase: string, location: string): KeyCache {
  const file = besidePassphrase(passphraseFile, 'keys', location);
  const check = createHash('sha256').update(passphrase).update('\0').update(location).digest('hex');
  return {
    async load(): Promise<MasterKeys | null> {
      const doc = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
      if (doc.v !== 1 || doc.check !== check) return null;
      const key = (k: string) => Buffer.from(String(doc[k]), 'base64');
      return { encKey: key('encKey'), idKey: key('idKey'), chunkerSeed: key('chunkerSeed') };
    },
    async save(keys: MasterKeys): Promise<void> {
      const doc = {
        v: 1,
        check,
        encKey: keys.encKey.toString('base64'),
        idKey: keys.idKey.toString('base64'),
        chunkerSeed: keys.chunkerSeed.toString('base64'),
      };
      await writeWhole(file, JSON.stringify(doc));
    },
  };
}

/**
 * The node's snapshot cache for one target (Repository's SnapshotCache): the sealed
 * snapshot objects already read, beside the passphrase file like the key cache
 * (`<passphrase file>.snapshots-<hash of the location>`). They stay sealed: the
 * repository opens each entry as if it came from the store.
 */
export function fileSnapshotCache(passphraseFile: string, location: string): SnapshotCache {
  const file = besidePassphrase(passphraseFile, 'snapshots', location);
  return {
    async load(): Promise<Map<string, Buffer>> {
      const doc = JSON.parse(await readFile(file, 'utf8')) as { v?: number; snapshots?: Record<string, string> };
      const out = new Map<string, Buffer>();
      if (doc.v !== 1) return out;
      for (const [id, sealed] of Object.entries(doc.snapshots ?? {})) out.set(id, Buffer.from(sealed, 'base64'));
      return out;
    },
    async save(sealed: Map<string, Buffer>): Promise<void> {
      const snapshots: Record<string, string> = {};
      for (const [id, b] of sealed) snapshots[id] = b.toString('base64');
      await writeWhole(file, JSON.stringify({ v: 1, snapshots }));
    },
  };
}

/**
 * The caches a node keeps for a target's repository (RepoOptions keyCache and
 * snapshotCache), in one place for every command that opens one.
 */
export function targetCaches(passphraseFile: string, passphrase: string, location: string): { keyCache: KeyCache; snapshotCache: SnapshotCache } {
  return { keyCache: fileKeyCache(passphraseFile, passphrase, location), snapshotCache: fileSnapshotCache(passphraseFile, location) };
}

/** `<passphrase file>.<kind>-<hash of the location>`: one file per target and kind. */
function besidePassphrase(passphraseFile: string, kind: string, location: string): string {
  return `${passphraseFile}.${kind}-${createHash('sha256').update(location).digest('hex').slice(0, 16)}`;
}

/** Writes `file` whole or not at all (a temporary file renamed over it; mode 0600). */
async function writeWhole(file: string, text: string): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, text, { mode: 0o600, flag: 'wx' });
  await rename(tmp, file).catch(async (err: unknown) => {
    await unlink(tmp).catch(() => {});
    throw err;
  });
}
