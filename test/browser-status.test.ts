import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { NodeStatus } from '../src/wui/status.js';
import { chromiumPath, launchChromium } from './helpers/browser.js';
import { runCli, startCli, tempDir, type CliProcess } from './helpers/cli.js';

const CHROMIUM = chromiumPath();
const SKIP = CHROMIUM ? false : 'chromium is not installed (apt-get install chromium; .ci/run installs it)';
const ARTIFACTS = new URL('../../test/artifacts/', import.meta.url).pathname;

/** 48 MiB of random files sent at 4 MiB/s (three 16 MiB packs): a run of about 12 s that a browser can watch. */
const FILES = 48;
const RATE = '4MiB/s';

describe('status page in headless Chromium', { skip: SKIP }, () => {
  let root: string;
  let cleanup: () => Promise<void>;
  let node: CliProcess;
  let loginLink: string;
  let base: string;
  let token: string;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;

  const apiStatus = async (): Promise<NodeStatus> => {
    const res = await fetch(`${base}/api/v1/status`, { headers: { authorization: `Bearer ${token}` } });
    return (await res.json()) as NodeStatus;
  };
  const bytesSent = async () => Number(await page.locator('[data-job="b1"] [data-field="bytesSent"]').getAttribute('data-bytes'));
  const state = () => page.locator('[data-job="b1"]').getAttribute('data-state');
  const waitFor = async (what: string, cond: () => Promise<boolean>, timeoutMs: number) => {
    const until = performance.now() + timeoutMs;
    while (!(await cond())) {
      if (performance.now() > until) throw new Error(`timed out waiting for ${what}; node output:\n${node.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  before(async () => {
    ({ dir: root, cleanup } = await tempDir('nightjar-browser-'));
    const source = join(root, 'photos');
    await mkdir(source, { recursive: true });
    for (let i = 0; i < FILES; i++) await writeFile(join(source, `img${String(i).padStart(2, '0')}.raw`), randomBytes(1 << 20));
    const dir = join(root, 'node');
    assert.equal((await runCli(['create-node', dir, '--source', source])).code, 0);
    const cfgFile = join(dir, 'node.cfg');
    let cfg = (await readFile(cfgFile, 'utf8')).replace(/^\[node\]$/m, '[node]\nweb.port = 0');
    cfg = cfg.replace(/^b1\.source = .*$/m, (line) => `${line}\nb1.bandwidth = ${RATE}`);
    await writeFile(cfgFile, cfg);
    token = (await readFile(join(dir, 'private', 'api_auth_token'), 'utf8')).trim();
    browser = await launchChromium(CHROMIUM as string);
    page = await browser.context.newPage();
    node = startCli(['start', '-d', dir]);
    loginLink = /open the status page: (\S+)/.exec(await node.waitFor(/open the status page: \S+/))![1]!;
    base = new URL(loginLink).origin;
  });

  after(async () => {
    await browser?.close();
    if (node && node.child.exitCode === null) {
      node.child.kill('SIGTERM');
      await node.exited;
    }
    await cleanup?.();
  });

  test('the login link opens the overview; bytes grow live; Pause stops them; Resume lets the run complete', async () => {
    await page.goto(loginLink);
    assert.equal(new URL(page.url()).pathname, '/', 'the token is dropped from the address bar');
    assert.ok(!page.url().includes(token));
    await page.locator('body[data-live="on"]').waitFor({ timeout: 10_000 });

    await waitFor('the run to send bytes', async () => (await bytesSent()) > 0, 20_000);
    const first = await bytesSent();
    await waitFor('the bytes to grow on the page', async () => (await bytesSent()) > first, 10_000);
    assert.equal(await state(), 'running');
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'overview.png'), fullPage: true });

    await page.locator('[data-job="b1"] form[data-when="unpaused"] button').click();
    await waitFor('the state to become paused', async () => (await state()) === 'paused', 5_000);
    assert.equal(await page.locator('[data-job="b1"] [data-field="label"]').textContent().then((t) => /paused/.test(t ?? '')), true);
    assert.ok(await page.locator('[data-job="b1"] form[data-when="paused"]').isVisible(), 'Resume is offered');
    // The pack already being uploaded finishes (at most one pack, throttled); then nothing moves.
    let held = await bytesSent();
    let stableSince = performance.now();
    await waitFor('the bytes to stop', async () => {
      const now = await bytesSent();
      if (now !== held) [held, stableSince] = [now, performance.now()];
      return performance.now() - stableSince >= 2500;
    }, 20_000);
    assert.equal(await state(), 'paused');
    // Packs the engine queued before the pause still go out (its gate is at chunk reads), but
    // the run does not finish while paused.
    assert.notEqual(await page.locator('[data-job="b1"] [data-field="lastResult"]').textContent(), 'completed', 'no completion while paused');
    assert.equal((await apiStatus()).jobs[0]!.paused, true);
    await page.screenshot({ path: join(ARTIFACTS, 'overview-paused.png'), fullPage: true });

    await page.locator('[data-job="b1"] form[data-when="paused"] button').click();
    await waitFor('the run to complete', async () => (await page.locator('[data-job="b1"] [data-field="lastResult"]').textContent()) === 'completed', 40_000);
    const status = await apiStatus();
    assert.equal(status.jobs[0]!.lastResult, 'completed');
    assert.equal(status.jobs[0]!.paused, false);
  });

  test('a page on another origin cannot pause a job, by form or by fetch', async (t) => {
    const t0 = performance.now();
    const mark = (what: string) => t.diagnostic(`${what} at ${Math.round(performance.now() - t0)} ms`);
    await fetch(`${base}/api/v1/resume`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    assert.equal((await apiStatus()).jobs[0]!.paused, false);
    const attacker: Server = createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(`<!doctype html><form id="f" method="post" action="${base}/jobs/b1/pause"><input type="hidden" name="_csrf" value="guess"><button id="go">win a prize</button></form>
<script>
window.tryFetch = async () => {
  const out = [];
  for (const [url, init] of [
    ['${base}/api/v1/jobs/b1/pause', { method: 'POST', credentials: 'include', mode: 'no-cors' }],
    ['${base}/api/v1/pause', { method: 'POST', credentials: 'include', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: '{}' }],
    ['${base}/api/v1/jobs/b1/pause', { method: 'POST', credentials: 'include', headers: { 'x-csrf-token': 'guess' } }],
  ]) {
    try { const r = await fetch(url, init); out.push(r.type + ':' + r.status); } catch (e) { out.push('blocked'); }
  }
  return out;
};
</script>`);
    });
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', r));
    try {
      const evil = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/`;
      assert.notEqual(new URL(evil).origin, base);
      await page.goto(evil);
      mark('attacker page loaded');
      const [response] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/jobs/b1/pause')), page.locator('#go').click()]);
      assert.equal(response.status(), 403, 'the form POST lacks the CSRF token');
      mark('form refused');
      await page.goto(evil);
      const results = (await page.evaluate('window.tryFetch()')) as string[];
      mark('fetches done');
      assert.equal(results.length, 3);
      assert.ok(!results.includes('basic:200') && !results.includes('cors:200'), results.join(', '));
      const status = await apiStatus();
      assert.equal(status.jobs[0]!.paused, false, 'the job was not paused');
    } finally {
      const closed = new Promise<void>((r) => attacker.close(() => r()));
      attacker.closeAllConnections(); // the browser keeps its connections alive
      await closed;
    }
  });
});
