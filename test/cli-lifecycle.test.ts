import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runAsCommand, runCli, startCli, tempDir } from './helpers/cli.js';

const FIXTURES = new URL('../../test/fixtures/cfg/', import.meta.url).pathname;

/** create-node DIR, then let its status page pick a free port so tests never collide. */
async function createTestNode(dir: string): Promise<void> {
  const r = await runCli(['create-node', dir]);
  assert.equal(r.code, 0, r.stderr);
  const cfgFile = join(dir, 'node.cfg');
  await writeFile(cfgFile, (await readFile(cfgFile, 'utf8')).replace(/^\[node\]$/m, '[node]\nweb.port = 0'));
}

let root: string;
let cleanup: () => Promise<void>;
before(async () => ({ dir: root, cleanup } = await tempDir('nightjar-cli-')));
after(() => cleanup());

describe('nightjar CLI basics', () => {
  test('--version prints the package version and exits 0', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await runCli(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), pkg.version);
  });

  test('bin/nightjar.js runs as a command: sh starts node on it with --v8-pool-size=1', async () => {
    // As `nightjar` runs once installed (node on PATH, as for npm scripts); a preloaded
    // script reports the node flags the process got.
    const probe = join(root, 'exec-argv.cjs');
    await writeFile(probe, "process.stderr.write('execArgv ' + JSON.stringify(process.execArgv) + '\\n');\n");
    const r = await runAsCommand(['--version'], { NODE_OPTIONS: `--require=${probe}` });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\d+\.\d+\.\d+/);
    assert.match(r.stderr, /execArgv \[[^\]]*"--v8-pool-size=1"/);
  });

  test('--help lists the commands; each command has its own --help', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /create-node/);
    assert.match(r.stdout, /start/);
    const sub = await runCli(['start', '--help']);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /--node-directory/);
  });

  test('an unknown command or option exits 2 (usage)', async () => {
    assert.equal((await runCli(['frobnicate'])).code, 2);
    assert.equal((await runCli(['start', '--bogus'])).code, 2);
  });
});

describe('create-node', () => {
  test('writes node.cfg with one job per source, private/ 0700 with token and passphrase', async () => {
    const dir = join(root, 'created');
    const photos = join(root, 'photos');
    await mkdir(photos);
    const r = await runCli(['create-node', dir, '--source', photos, '--source', root + '/docs']);
    assert.equal(r.code, 0, r.stderr);
    const cfg = await readFile(join(dir, 'node.cfg'), 'utf8');
    assert.match(cfg, new RegExp(`^b1\\.source = ${photos}$`, 'm'));
    assert.match(cfg, /^b1\.target = local$/m);
    assert.match(cfg, /^b2\.source = .*docs$/m);
    assert.match(cfg, /^local = local:repository$/m);
    assert.equal((await stat(join(dir, 'private'))).mode & 0o777, 0o700);
    const token = await readFile(join(dir, 'private', 'api_auth_token'), 'utf8');
    assert.ok(token.trim().length >= 40, 'token is long and random');
    assert.equal((await stat(join(dir, 'private', 'api_auth_token'))).mode & 0o777, 0o600);
    assert.ok((await readFile(join(dir, 'private', 'passphrase'), 'utf8')).trim().length >= 40);
    // The embedded repository exists at once (as after restic init), its key cached in private/.
    assert.match(r.stdout, /created repository .*repository/);
    assert.ok(existsSync(join(dir, 'repository', 'config')));
    assert.ok((await readdir(join(dir, 'private'))).some((f) => f.startsWith('passphrase.keys-')), 'key cache written');
    const snaps = await runCli(['snapshots', '--json', '-d', dir]);
    assert.equal(snaps.code, 0, snaps.stderr);
    assert.deepEqual(JSON.parse(snaps.stdout), []);
  });

  test('a local repository that cannot be created yet: the node is created, with a warning', async () => {
    const dir = join(root, 'repo-blocked');
    await mkdir(dir);
    await writeFile(join(dir, 'repository'), 'a file where the repository directory goes\n');
    const r = await runCli(['create-node', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /local repository is not created yet \(the first run will\)/);
    assert.ok(existsSync(join(dir, 'node.cfg')));
  });

  test('refuses to overwrite an existing node and leaves it unchanged', async () => {
    const dir = join(root, 'twice');
    assert.equal((await runCli(['create-node', dir])).code, 0);
    const before = await readFile(join(dir, 'node.cfg'), 'utf8');
    const token = await readFile(join(dir, 'private', 'api_auth_token'), 'utf8');
    const r = await runCli(['create-node', '-d', dir, '--source', root]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists/);
    assert.equal(await readFile(join(dir, 'node.cfg'), 'utf8'), before);
    assert.equal(await readFile(join(dir, 'private', 'api_auth_token'), 'utf8'), token);
  });
});

describe('start', () => {
  test('on an empty directory creates a node, runs, refuses a second node, stops cleanly on SIGTERM', async () => {
    const dir = join(root, 'fresh');
    const node = startCli(['start', '-d', dir]);
    await node.waitFor(/created one/);
    await node.waitFor(/started in/);
    assert.ok(existsSync(join(dir, 'nightjar.pid')));
    assert.ok(existsSync(join(dir, 'repository', 'config')), 'its local repository created with it');
    const link = (await node.waitFor(/open the status page: \S+/)).split(': ')[1]!;
    const token = (await readFile(join(dir, 'private', 'api_auth_token'), 'utf8')).trim();
    const login = await fetch(link, { redirect: 'manual' });
    assert.equal(login.status, 303, 'the printed login link works');
    const page = await fetch(new URL('/', link), { headers: { cookie: login.headers.get('set-cookie')!.split(';')[0]! } });
    assert.equal(page.status, 200);
    assert.ok(!(await readFile(join(dir, 'logs', 'nightjar.log'), 'utf8')).includes(token), 'the token stays out of the log file');

    const second = await runCli(['start', '-d', dir]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /another Nightjar node \(pid \d+\) is running/);

    node.child.kill('SIGTERM');
    const r = await node.exited;
    assert.equal(r.code, 0, node.output());
    assert.equal(existsSync(join(dir, 'nightjar.pid')), false, 'pid file removed');
    const log = await readFile(join(dir, 'logs', 'nightjar.log'), 'utf8');
    assert.match(log, /stopping \(SIGTERM\)/);
    assert.match(log, /stopped/);
  });

  test('SIGINT also stops cleanly', async () => {
    const dir = join(root, 'sigint');
    await createTestNode(dir);
    const node = startCli(['start', '-d', dir]);
    await node.waitFor(/started in/);
    node.child.kill('SIGINT');
    assert.equal((await node.exited).code, 0);
  });

  test('recovers from a stale lock file left by a dead process', async () => {
    const dir = join(root, 'stale');
    await createTestNode(dir);
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    await writeFile(join(dir, 'nightjar.pid'), `${dead.stdout}\n`);
    const node = startCli(['start', '-d', dir]);
    await node.waitFor(new RegExp(`removed a stale lock file left by pid ${dead.stdout}`));
    await node.waitFor(/started in/);
    assert.equal((await readFile(join(dir, 'nightjar.pid'), 'utf8')).trim(), String(node.child.pid));
    node.child.kill('SIGTERM');
    assert.equal((await node.exited).code, 0);
  });

  test('SIGHUP with a broken node.cfg keeps the old config running; a fixed one is reloaded', async () => {
    const dir = join(root, 'hup');
    await createTestNode(dir);
    const cfgFile = join(dir, 'node.cfg');
    const good = await readFile(cfgFile, 'utf8');
    const node = startCli(['start', '-d', dir]);
    await node.waitFor(/started in/);

    await appendFile(cfgFile, '\nb1.frequency = every now and then\n');
    node.child.kill('SIGHUP');
    await node.waitFor(/keeping the previous config/);
    await node.waitFor(/node\.cfg:\d+: \[backups\] b1\.frequency/);
    assert.equal(node.child.exitCode, null, 'still running');

    await writeFile(cfgFile, good);
    node.child.kill('SIGHUP');
    await node.waitFor(/reloaded/);
    node.child.kill('SIGTERM');
    assert.equal((await node.exited).code, 0);
  });

  test('a node.cfg with five mistakes exits 2 and names all five with line and key', async () => {
    const dir = join(root, 'five');
    assert.equal((await runCli(['create-node', dir])).code, 0);
    await copyFile(join(FIXTURES, 'five-mistakes.cfg'), join(dir, 'node.cfg'));
    const r = await runCli(['start', '-d', dir]);
    assert.equal(r.code, 2);
    const problems = r.stderr.split('\n').filter((l) => /node\.cfg:\d+: /.test(l));
    assert.equal(problems.length, 5, r.stderr);
    assert.match(r.stderr, /5 problem/);
    assert.equal(existsSync(join(dir, 'nightjar.pid')), false, 'a refused start leaves no lock behind');
  });
});
