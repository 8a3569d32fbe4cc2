import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { runCli, startCli, tempDir } from './helpers/cli.js';

let root: string;
let cleanup: () => Promise<void>;
before(async () => ({ dir: root, cleanup } = await tempDir('nightjar-peer-')));
after(() => cleanup());

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function treeDigest(dir: string): Promise<string> {
  const hash = createHash('sha256');
  for (const name of (await readdir(dir, { recursive: true })).sort()) {
    const data = await readFile(join(dir, name)).catch(() => null); // directories read as null
    hash.update(`${name}\0${data ? createHash('sha256').update(data).digest('hex') : 'dir'}\n`);
  }
  return hash.digest('hex');
}

async function editConfig(dir: string, edit: (cfg: string) => string): Promise<void> {
  const file = join(dir, 'node.cfg');
  await writeFile(file, edit(await readFile(file, 'utf8')));
}

test('node A backs up to peer node B through the CLI: pasted add-client lines work, restore is exact, check --read-data passes', async () => {
  const port = await freePort();
  const b = join(root, 'b');
  assert.equal((await runCli(['create-node', b])).code, 0);
  await editConfig(b, (c) =>
    c.replace(/^\[node\]$/m, '[node]\nweb.port = 0').replace(/^\[storage\]$/m, `[storage]\nenabled = true\nlisten = 127.0.0.1\nport = ${port}`),
  );
  const added = await runCli(['add-client', 'alice', '--json', '--host', '127.0.0.1', '--alias', 'parents', '-d', b]);
  assert.equal(added.code, 0, added.stderr);
  const client = JSON.parse(added.stdout) as { target: string; token: string; fingerprint: string };
  assert.equal(client.target, `node:https://127.0.0.1:${port}`);

  const source = join(root, 'photos');
  await mkdir(join(source, 'album'), { recursive: true });
  for (let i = 0; i < 30; i++) await writeFile(join(source, 'album', `p${i}.jpg`), createHash('sha512').update(String(i)).digest().toString('hex').repeat(200 + i));
  const a = join(root, 'a');
  assert.equal((await runCli(['create-node', a, '--source', source])).code, 0);
  await writeFile(join(a, 'private', 'parents.token'), `${client.token}\n`, { mode: 0o600 });
  await editConfig(a, (c) =>
    c
      .replace(/^\[node\]$/m, '[node]\nweb.port = 0')
      .replace(/^local = local:repository$/m, `local = local:repository\nparents = ${client.target}\nparents.token_file = private/parents.token\nparents.fingerprint = ${client.fingerprint}`)
      .replace(/^b1\.target = local$/m, 'b1.target = parents'),
  );

  const nodeB = startCli(['start', '-d', b]);
  try {
    await nodeB.waitFor(/storage service on/);
    const run = await runCli(['run-job', 'b1', '--json', '-d', a]);
    assert.equal(run.code, 0, run.stderr + run.stdout);
    const snaps = await runCli(['snapshots', '--json', '-d', a]);
    assert.equal(snaps.code, 0, snaps.stderr);
    assert.equal((JSON.parse(snaps.stdout) as unknown[]).length, 1, snaps.stdout + snaps.stderr);
    const dest = join(root, 'restored');
    const restored = await runCli(['restore', 'latest', dest, '-d', a]);
    assert.equal(restored.code, 0, restored.stderr);
    assert.equal(await treeDigest(dest), await treeDigest(source));
    const check = await runCli(['check', '--read-data', '-d', a]);
    assert.equal(check.code, 0, check.stderr + check.stdout);
    // B holds only ciphertext: no source name appears in its storage directory listing.
    const stored = (await readdir(join(b, 'storage'), { recursive: true })).join('\n');
    assert.doesNotMatch(stored, /album|p\d+\.jpg/);
  } finally {
    nodeB.child.kill('SIGTERM');
    assert.equal((await nodeB.exited).code, 0, nodeB.output());
  }
});
