import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { DEFERRED_EXTRA_CA_ENV, takeDeferredExtraCa } from '../src/node/extra-ca.js';
import { runAsCommand, runCli, tempDir, type CliResult } from './helpers/cli.js';
import { startS3rver, type S3TestServer } from './helpers/s3-servers.js';

const TLS_FIXTURES = new URL('../../test/fixtures/tls/', import.meta.url).pathname;
/** The CA that signed localhost.crt (for localhost and 127.0.0.1); in no trust store. */
const TEST_CA = join(TLS_FIXTURES, 'ca.crt');

/** bin/nightjar.js as a command, with `env` on top of this environment minus NODE_EXTRA_CA_CERTS. */
function runCommand(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return runAsCommand(args, { NODE_EXTRA_CA_CERTS: undefined, ...env });
}

let root: string;
let cleanup: () => Promise<void>;
before(async () => ({ dir: root, cleanup } = await tempDir('nightjar-extra-ca-')));
after(() => cleanup());

describe('NODE_EXTRA_CA_CERTS is loaded when a TLS connection needs it', () => {
  test('the launcher hands it to node under another name; takeDeferredExtraCa puts it back', async () => {
    const probe = join(root, 'env-probe.cjs');
    await writeFile(probe, "process.stderr.write('probe ' + JSON.stringify([process.env.NODE_EXTRA_CA_CERTS ?? null, process.env.NIGHTJAR_EXTRA_CA_CERTS ?? null]) + '\\n');\n");
    const moved = await runCommand(['--version'], { NODE_EXTRA_CA_CERTS: TEST_CA, NODE_OPTIONS: `--require=${probe}` });
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stderr, new RegExp(`probe \\[null,"${TEST_CA}"\\]`));
    // With --use-openssl-ca node's roots are the system's, which only node can load: left alone.
    const kept = await runCommand(['--version'], { NODE_EXTRA_CA_CERTS: TEST_CA, NODE_OPTIONS: `--require=${probe} --use-openssl-ca` });
    assert.match(kept.stderr, new RegExp(`probe \\["${TEST_CA}",null\\]`));
    const none = await runCommand(['--version'], { NODE_OPTIONS: `--require=${probe}` });
    assert.match(none.stderr, /probe \[null,null\]/);

    const env: NodeJS.ProcessEnv = { [DEFERRED_EXTRA_CA_ENV]: TEST_CA };
    takeDeferredExtraCa(env);
    assert.deepEqual(env, { NODE_EXTRA_CA_CERTS: TEST_CA });
  });

  describe('a backup to S3 over TLS, through the launcher', () => {
    let s3: S3TestServer;
    let proxy: tls.Server;
    let endpoint: string;
    const bucket = 'extra-ca';

    before(async () => {
      s3 = await startS3rver();
      await s3.createBucket(bucket);
      const s3Port = Number(new URL(s3.endpoint).port);
      // TLS in front of s3rver (which speaks plain HTTP), with a certificate of the test CA.
      proxy = tls.createServer(
        { key: readFileSync(join(TLS_FIXTURES, 'localhost.key')), cert: readFileSync(join(TLS_FIXTURES, 'localhost.crt')) },
        (client) => {
          const upstream = net.connect(s3Port, '127.0.0.1');
          client.pipe(upstream).pipe(client);
          client.on('error', () => upstream.destroy());
          upstream.on('error', () => client.destroy());
        },
      );
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      endpoint = `https://127.0.0.1:${(proxy.address() as net.AddressInfo).port}`;
    });
    after(async () => {
      await new Promise((resolve) => proxy.close(resolve));
      await s3.stop();
    });

    /** A node backing up one small directory to prefix `name` of the bucket; its post_command records NODE_EXTRA_CA_CERTS. */
    async function nodeOnS3(name: string): Promise<{ dir: string; hookOut: string }> {
      const dir = join(root, name);
      const source = join(root, `${name}-src`);
      await mkdir(source);
      await writeFile(join(source, 'a.txt'), 'hello over TLS\n');
      const created = await runCli(['create-node', dir, '--source', source]);
      assert.equal(created.code, 0, created.stderr);
      await writeFile(join(dir, 's3.access'), `${s3.accessKey}\n`, { mode: 0o600 });
      await writeFile(join(dir, 's3.secret'), `${s3.secretKey}\n`, { mode: 0o600 });
      const hookOut = join(dir, 'hook-env');
      const cfgFile = join(dir, 'node.cfg');
      const cfg = (await readFile(cfgFile, 'utf8'))
        .replace(
          /^local = local:repository$/m,
          [
            `local = s3://${bucket}/${name}`,
            `local.endpoint = ${endpoint}`,
            'local.path_style = true',
            `local.access_key_file = ${join(dir, 's3.access')}`,
            `local.secret_key_file = ${join(dir, 's3.secret')}`,
          ].join('\n'),
        )
        .replace(/^b1\.target = local$/m, `b1.target = local\nb1.post_command = printf %s "$NODE_EXTRA_CA_CERTS" > ${hookOut}`);
      await writeFile(cfgFile, cfg);
      return { dir, hookOut };
    }

    async function objectsUnder(prefix: string): Promise<number> {
      const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/` }));
      return listed.KeyCount ?? 0;
    }

    test('trusts the extra CA file: the backup lands, and hooks see NODE_EXTRA_CA_CERTS', async () => {
      const { dir, hookOut } = await nodeOnS3('trusted');
      const r = await runCommand(['run-job', 'b1', '-d', dir], { NODE_EXTRA_CA_CERTS: TEST_CA });
      assert.equal(r.code, 0, r.stderr);
      assert.ok((await objectsUnder('trusted')) > 0, 'the repository is in the bucket');
      assert.equal(await readFile(hookOut, 'utf8'), TEST_CA);
    });

    test('without it, or with a file that cannot be loaded, the server is not trusted', async () => {
      const { dir } = await nodeOnS3('untrusted');
      const plain = await runCommand(['run-job', 'b1', '-d', dir], {});
      assert.notEqual(plain.code, 0);
      assert.match(plain.stderr, /certificate/i);
      assert.doesNotMatch(plain.stderr, /\n\s+at /, 'the message, not a stack trace');
      const missing = join(root, 'no-such-ca.crt');
      const broken = await runCommand(['run-job', 'b1', '-d', dir], { NODE_EXTRA_CA_CERTS: missing });
      assert.notEqual(broken.code, 0);
      assert.match(broken.stderr, new RegExp(`Ignoring extra certs from \`${missing}\`, load failed`));
      assert.match(broken.stderr, /certificate/i);
      assert.equal(await objectsUnder('untrusted'), 0);
    });
  });
});
