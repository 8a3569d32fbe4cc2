import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Command } from 'commander';
import { systemClock } from '../src/node/clock.js';
import { CliExit, type CliEnv } from '../src/node/cli-env.js';
import { registerAddClient } from '../src/node/commands/add-client.js';
import { registerClients } from '../src/node/commands/clients.js';
import { loadConfig, parseConfig } from '../src/node/config/config.js';
import { createNode } from '../src/node/create-node.js';
import { nodeDirLayout, type NodeDirLayout } from '../src/node/node-dir.js';
import { certificateFingerprint, ensureStorageCertificate } from '../src/node/tls-cert.js';
import { loadClientRecords } from '../src/server/client-registry.js';
import { startStorageService } from '../src/server/storage-service.js';
import { openNodeStore } from '../src/store/node-store.js';
import { StoreError } from '../src/store/store.js';
import { tempDir } from './helpers/cli.js';

async function addClient(args: string[]): Promise<string> {
  return runCommand(registerAddClient, ['add-client', ...args]);
}

async function runCommand(register: (p: Command, e: CliEnv) => void, args: string[]): Promise<string> {
  const stdout = new PassThrough();
  let out = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  const env: CliEnv = { stdout, stderr: new PassThrough(), clock: systemClock, env: {} };
  const program = new Command('nightjar').exitOverride();
  register(program, env);
  for (const cmd of program.commands) cmd.exitOverride();
  await program.parseAsync(args, { from: 'user' });
  return out;
}

describe('nightjar add-client', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let layout: NodeDirLayout;
  before(async () => {
    ({ dir, cleanup } = await tempDir());
    layout = nodeDirLayout(join(dir, 'storage-node'));
    await createNode(layout, []);
  });
  after(() => cleanup());

  it('prints [targets] lines a peer can paste, with a token that works against the service', async () => {
    const out = await addClient(['bob', '--quota', '500GiB', '--alias', 'parents', '--host', 'nas.example', '-d', layout.root]);
    const cert = await ensureStorageCertificate(layout);
    assert.equal(cert.created, false, 'add-client made the certificate');
    assert.match(out, /added client "bob" \(append-only, quota 500 GiB\)/);
    assert.match(out, /^ {4}parents = node:https:\/\/nas\.example:7788$/m);
    assert.match(out, /^ {4}parents\.token_file = private\/parents\.token$/m);
    assert.ok(out.includes(`    parents.fingerprint = ${cert.fingerprint}\n`));
    assert.match(out, /save this token, alone on one line, in the file private\/parents\.token/);
    const token = /private\/parents\.token of bob's node directory \(mode 0600\):\n\n {4}(\S+)\n/.exec(out)![1]!;

    // Only the hash is kept.
    const records = await loadClientRecords(layout);
    assert.equal(records.length, 1);
    assert.equal(records[0]!.quota, 500 * 1024 ** 3);
    const stored = await fsp.readFile(join(layout.privateDir, 'clients', 'bob.json'), 'utf8');
    assert.ok(!stored.includes(token));
    assert.equal((await fsp.stat(join(layout.privateDir, 'clients', 'bob.json'))).mode & 0o777, 0o600);

    // The peer pastes the lines; they parse into a valid node: target.
    const peerDir = join(dir, 'peer');
    const lines = out.split('\n').filter((l) => l.startsWith('    parents')).map((l) => l.trim());
    const { config: peerConfig, problems } = parseConfig(`[targets]\n${lines.join('\n')}\n`, { file: join(peerDir, 'node.cfg'), nodeDir: peerDir });
    assert.deepEqual(problems, []);
    const target = peerConfig!.targets.parents!;
    assert.equal(target.kind, 'node');
    assert.equal(target.tokenFile, join(peerDir, 'private', 'parents.token'));
    await fsp.mkdir(join(peerDir, 'private'), { recursive: true });
    await fsp.writeFile(target.tokenFile!, `${token}\n`, { mode: 0o600 });

    // Run the storage node (on a free loopback port rather than 7788) and use the target.
    const loaded = await loadConfig(layout.configFile, layout.root);
    const config = { ...loaded, storage: { ...loaded.storage, enabled: true, listen: '127.0.0.1', port: 0, reservedSpace: 0 } };
    const service = await startStorageService({ config, layout, clock: systemClock, log: { info() {}, warn() {} } });
    try {
      assert.equal(service.fingerprint, cert.fingerprint);
      const store = await openNodeStore({ ...target, location: service.url }, { clock: systemClock });
      await store.write('keys/k1', Buffer.from('key'));
      assert.equal((await store.read('keys/k1')).toString(), 'key');
      const info = await store.info();
      assert.equal(info.client, 'bob');
      assert.equal(info.appendOnly, true);
      assert.equal(info.quota, 500 * 1024 ** 3);
      await store.close();

      // --replace issues a new token; the old one stops working without a restart.
      const replaced = JSON.parse(await addClient(['bob', '--replace', '--json', '-d', layout.root])) as { token: string };
      assert.notEqual(replaced.token, token);
      const old = await openNodeStore({ ...target, location: service.url }, { clock: systemClock });
      await assert.rejects(old.stat('keys/k1'), (e: unknown) => e instanceof StoreError && e.code === 'NJ_STORE_AUTH');
      await old.close();
    } finally {
      await service.close();
    }
  });

  it('--json prints target, token and fingerprint; --delete-token adds a delete token', async () => {
    const j = JSON.parse(await addClient(['carol', '--json', '--delete-token', '--host', '::1', '-d', layout.root])) as Record<string, unknown>;
    assert.match(String(j.target), /^node:https:\/\/\[::1\]:7788$/);
    assert.match(String(j.token), /^[A-Za-z0-9_-]{43}$/);
    assert.match(String(j.delete_token), /^[A-Za-z0-9_-]{43}$/);
    assert.equal(j.fingerprint, (await ensureStorageCertificate(layout)).fingerprint);
    assert.equal(j.client, 'carol');
    assert.equal(j.append_only, true);
  });

  it('refuses an existing client without --replace, and bad names or quotas', async () => {
    await assert.rejects(addClient(['carol', '-d', layout.root]), (e: unknown) => e instanceof CliExit && e.exitCode === 1 && /already exists/.test(e.message));
    await assert.rejects(addClient(['../evil', '-d', layout.root]), (e: unknown) => e instanceof CliExit && e.exitCode === 2);
    await assert.rejects(addClient(['dave', '--quota', 'lots', '-d', layout.root]), (e: unknown) => e instanceof CliExit && e.exitCode === 2);
  });

  it('nightjar clients lists them with usage and activity', async () => {
    const list = JSON.parse(await runCommand(registerClients, ['clients', '--json', '-d', layout.root])) as Array<Record<string, unknown>>;
    assert.deepEqual(list.map((c) => c.name), ['bob', 'carol']);
    const bob = list[0]!;
    assert.equal(bob.usedBytes, 3); // keys/k1 = "key"
    assert.equal(bob.objects, 1);
    assert.equal(bob.quota, 500 * 1024 ** 3);
    assert.equal(typeof bob.lastSeenAt, 'string'); // saved when the service stopped
    assert.equal(bob.stale, false);
    const text = await runCommand(registerClients, ['clients', '-d', layout.root]);
    assert.match(text, /^bob: 3 B of 500 GiB in 1 objects, append-only; last seen \S+; last backup never$/m);
  });
});

describe('storage certificate', () => {
  it('is made once (mode 0600), is a valid self-signed certificate, and its fingerprint is stable', async () => {
    const { dir, cleanup } = await tempDir();
    try {
      const layout = nodeDirLayout(dir);
      const [a, b] = await Promise.all([ensureStorageCertificate(layout), ensureStorageCertificate(layout)]);
      assert.equal(a.fingerprint, b.fingerprint, 'two racing creators agree on one certificate');
      assert.equal([a.created, b.created].filter(Boolean).length, 1);
      const c = await ensureStorageCertificate(layout);
      assert.equal(c.created, false);
      assert.equal(c.fingerprint, a.fingerprint);
      assert.match(c.fingerprint, /^([0-9a-f]{2}:){31}[0-9a-f]{2}$/);
      for (const f of [c.keyFile, c.certFile]) assert.equal((await fsp.stat(f)).mode & 0o777, 0o600);
      const x = new X509Certificate(c.certPem);
      assert.ok(x.verify(x.publicKey));
      assert.equal(x.fingerprint256.toLowerCase(), c.fingerprint);
      assert.equal(certificateFingerprint(x.raw), c.fingerprint);
      assert.ok(x.checkPrivateKey((await import('node:crypto')).createPrivateKey(c.keyPem)));
      assert.deepEqual((await fsp.readdir(layout.privateDir)).sort(), ['storage.crt', 'storage.key']);
    } finally {
      await cleanup();
    }
  });
});
