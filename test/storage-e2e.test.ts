// A backs up to B over the storage protocol while B is killed (SIGKILL) and restarted
// mid-upload. B is a real storage service in a child process; A is the backup engine
// in this process on a node: target with the retry decorator. (The two-node version with
// `nightjar start` / `nightjar run-job` needs open-target.ts to open node: targets.)
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runBackup } from '../src/jobs/backup-run.js';
import { systemClock } from '../src/node/clock.js';
import type { TargetConfig } from '../src/node/config/types.js';
import { nodeDirLayout } from '../src/node/node-dir.js';
import { Repository } from '../src/repo/repository.js';
import type { Tree } from '../src/repo/types.js';
import { createClient } from '../src/server/client-registry.js';
import { openNodeStore } from '../src/store/node-store.js';
import { withRetry } from '../src/store/retrying-store.js';
import type { Store } from '../src/store/store.js';
import { tempDir } from './helpers/cli.js';

const clock = systemClock;
const DIST = new URL('../src/', import.meta.url).href;

const NODE_B_SCRIPT = `
import { startStorageService } from '${DIST}server/storage-service.js';
import { parseConfig } from '${DIST}node/config/config.js';
import { nodeDirLayout } from '${DIST}node/node-dir.js';
import { systemClock } from '${DIST}node/clock.js';
const [dir, port] = process.argv.slice(2);
const layout = nodeDirLayout(dir);
const text = '[storage]\\nenabled = true\\nlisten = 127.0.0.1\\nport = ' + port + '\\nreserved_space = 0\\n';
const { config, problems } = parseConfig(text, { file: layout.configFile, nodeDir: layout.root });
if (!config) { console.log(JSON.stringify(problems)); process.exit(2); }
const log = { info: (m) => console.log(m), warn: (m) => console.log('WARN ' + m) };
const service = await startStorageService({ config, layout, clock: systemClock, log });
console.log('READY ' + service.url + ' ' + service.fingerprint);
`;

interface NodeB {
  child: ChildProcess;
  url: string;
  fingerprint: string;
}

function startNodeB(script: string, dir: string, port: number): Promise<NodeB> {
  const child = spawn(process.execPath, [script, dir, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`node B did not start:\n${out}`)), 15_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /READY (\S+) (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, fingerprint: m[2]! });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node B exited (${code}):\n${out}`));
    });
  });
}

async function readTreeFiles(repo: Repository, treeId: string, prefix = ''): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const tree: Tree = await repo.loadTree(treeId);
  for (const e of tree.entries) {
    const name = prefix + e.name.toString();
    if (e.type === 'dir') for (const [k, v] of await readTreeFiles(repo, e.subtree!, `${name}/`)) out.set(k, v);
    else if (e.type === 'file') {
      const parts: Buffer[] = [];
      await repo.readFileContent(e.content ?? [], async (chunk) => void parts.push(Buffer.from(chunk)));
      out.set(name, Buffer.concat(parts));
    }
  }
  return out;
}

describe('end to end: A backs up to storage node B over HTTPS', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let b: NodeB | null = null;
  before(async () => ({ dir, cleanup } = await tempDir('nightjar-e2e-')));
  after(async () => {
    b?.child.kill('SIGKILL');
    await cleanup();
  });

  it('completes although B is killed and restarted mid-upload; check --read-data passes and a restore equals the source', async () => {
    const script = join(dir, 'node-b.mjs');
    await fsp.writeFile(script, NODE_B_SCRIPT);
    const bDir = join(dir, 'b');
    const bLayout = nodeDirLayout(bDir);
    await fsp.mkdir(bLayout.privateDir, { recursive: true, mode: 0o700 });
    // Append-only (the default): the engine must get by with adding objects and removing its locks.
    const { token } = await createClient(bLayout, 'a', { createdAt: clock.now().toISOString() });
    b = await startNodeB(script, bDir, 0);
    const port = Number(new URL(b.url).port);

    const source = join(dir, 'source');
    const files = new Map<string, Buffer>();
    for (let i = 0; i < 24; i++) {
      const rel = `d${i % 3}/file${i}.bin`;
      files.set(rel, randomBytes(96 * 1024 + i));
      await fsp.mkdir(join(source, `d${i % 3}`), { recursive: true });
      await fsp.writeFile(join(source, rel), files.get(rel)!);
    }
    const tokenFile = join(dir, 'b.token');
    await fsp.writeFile(tokenFile, token);
    const target: TargetConfig = {
      alias: 'parents', kind: 'node', url: `node:${b.url}`, location: b.url, passphraseFile: '', bandwidth: null, budget: null,
      tokenFile, fingerprint: b.fingerprint, endpoint: null, region: null, pathStyle: false, accessKeyFile: null, secretKeyFile: null, storageClass: null,
    };

    // Kill B (SIGKILL) while the third pack upload is in flight; bring it back 700 ms later.
    let packs = 0;
    let restarted: Promise<void> | null = null;
    const nodeStore = await openNodeStore(target, { clock, connectTimeoutMs: 2000 });
    const killer: Store = {
      location: nodeStore.location,
      list: (p) => nodeStore.list(p),
      stat: (n) => nodeStore.stat(n),
      read: (n, r) => nodeStore.read(n, r),
      delete: (n) => nodeStore.delete(n),
      close: () => nodeStore.close(),
      write: (n, data) => {
        const w = nodeStore.write(n, data);
        if (n.startsWith('data/') && ++packs === 3) {
          setTimeout(() => b!.child.kill('SIGKILL'), 2);
          restarted = (async () => {
            await clock.sleep(700);
            b = await startNodeB(script, bDir, port);
          })();
        }
        return w;
      },
    };
    const retries: string[] = [];
    const store = withRetry(killer, { clock, baseDelayMs: 50, maxDelayMs: 400, maxAttempts: 100, onRetry: (e) => retries.push(String((e as Error).message)) });
    const { repo } = await Repository.openOrInit(store, 'pass', { clock, workers: 1, packSize: 256 * 1024, kdf: { N: 1024, r: 8, p: 1 } });
    const result = await runBackup({
      repo,
      fileCache: null,
      job: { name: 'e2e', source, exclude: [], maxFileSize: null, minFileAgeMs: null, oneFileSystem: false, maxDeleteRatio: 1 },
      clock,
    });
    await repo.close();
    await store.close();
    assert.equal(result.status, 'complete', result.error);
    assert.ok(restarted !== null, 'B was killed during the run');
    await restarted;
    assert.ok(retries.length > 0, 'the run had to wait for B');

    // A fresh client: everything is on B, readable and intact.
    const store2 = withRetry(await openNodeStore(target, { clock }), { clock });
    const { repo: repo2 } = await Repository.openOrInit(store2, 'pass', { clock, workers: 1, kdf: { N: 1024, r: 8, p: 1 } });
    try {
      const report = await repo2.check({ readData: true });
      assert.equal(report.ok, true, JSON.stringify(report.problems));
      assert.ok(report.bytesVerified > 0);
      const snaps = await repo2.listSnapshots();
      assert.equal(snaps.length, 1);
      const restored = await readTreeFiles(repo2, snaps[0]!.tree);
      assert.deepEqual([...restored.keys()].sort(), [...files.keys()].sort());
      for (const [k, v] of files) assert.ok(restored.get(k)!.equals(v), `${k} differs`);
    } finally {
      await repo2.close();
      await store2.close();
    }
    // The killed upload's temp file was swept when B restarted.
    const leftovers = (await fsp.readdir(join(bDir, 'storage', 'a'))).filter((n) => n.startsWith('.nj-tmp-'));
    assert.deepEqual(leftovers, []);
  });
});
