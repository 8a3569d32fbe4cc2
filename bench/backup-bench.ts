/**
 * Nightjar against restic on the same data, in one run (`npm run bench`, or
 * `npm run bench -- --profile large`, `-- --rounds N`). Not a test: it prints figures and
 * ratios.
 *
 * Steps, each timed for both tools (wall clock of the CLI process, start-up included;
 * `bin/nightjar.js` run as the `nightjar` command is, with the node flag its first lines
 * give; the repositories are created untimed, restic's by `restic init`, Nightjar's by
 * `create-node`; restic derives its key in every command, Nightjar reads it from the
 * node's key cache) with peak RSS from `/usr/bin/time -v`: first backup (into a new
 * repository each round), re-run with nothing changed, re-run after
 * `mutate-dataset.mjs DIR 1 ROUND` (another 1% each round), full restore of the latest
 * snapshot into a fresh directory. Each step runs `--rounds` times (default 3), the tools
 * taking turns (and turns at going first), and the median is reported: these machines vary by 10–15% from one run to
 * the next. Every directory is fresh (see the inode-reuse trap in
 * ../shared/bench/README.md). Both tools encrypt; both run warm (the generator just wrote
 * the data).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const SHARED = process.env.NIGHTJAR_BENCH_DIR ?? '/work/shared/bench';
const BIN = fileURLToPath(new URL('../../bin/nightjar.js', import.meta.url));

interface Measure {
  ms: number;
  rssKiB: number;
  stdout: string;
}

function args(): { profile: string; keep: boolean; rounds: number } {
  const a = process.argv.slice(2);
  const opt = (name: string) => {
    const i = a.indexOf(name);
    return i >= 0 ? a[i + 1] : undefined;
  };
  return { profile: opt('--profile') ?? 'small', keep: a.includes('--keep'), rounds: Math.max(1, Number(opt('--rounds') ?? 3)) };
}

/** The run with the median time (its RSS goes with it; peak RSS is taken over all runs). */
function median(runs: Measure[]): Measure {
  return [...runs].sort((x, y) => x.ms - y.ms)[Math.floor((runs.length - 1) / 2)]!;
}

/**
 * Runs a command under /usr/bin/time -v; throws on a non-zero exit. Dirty pages are
 * written out first (not timed): otherwise the step after a data-writing one (the
 * generator, the other tool's restore) pays for that writeback.
 */
function measure(cmd: string, argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<Measure> {
  execFileSync('sync');
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-v', cmd, ...argv], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      const ms = performance.now() - t0;
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
      if (code !== 0) return reject(new Error(`${cmd} ${argv.join(' ')} exited ${code}\n${out}\n${err}`));
      resolve({ ms, rssKiB: m ? Number(m[1]) : 0, stdout: out });
    });
  });
}

function ensureRestic(): void {
  try {
    execFileSync('restic', ['version'], { stdio: 'ignore' });
  } catch {
    console.log('restic not found: apt-get install -y restic');
    execFileSync('apt-get', ['install', '-y', 'restic'], { stdio: 'inherit' });
  }
}

async function main(): Promise<void> {
  const { profile, keep, rounds } = args();
  ensureRestic();
  const work = mkdtempSync(join(tmpdir(), `nightjar-bench-${profile}-`));
  const data = join(work, 'data');
  console.log(`generating ${profile} dataset in ${data} …`);
  execFileSync(process.execPath, [join(SHARED, 'gen-dataset.mjs'), data, profile], { stdio: 'inherit' });

  // Nightjar: a fresh node with one job over the data, local repository inside the node dir.
  // restic: a repository with a password from the environment. A new pair per first backup.
  let node = '';
  let renv: NodeJS.ProcessEnv = {};
  const fresh = (round: number) => {
    node = join(work, `node-${round}`);
    execFileSync(process.execPath, [BIN, 'create-node', node, '--source', data], { stdio: 'ignore' });
    const resticRepo = join(work, `restic-repo-${round}`);
    renv = { ...process.env, RESTIC_PASSWORD: 'bench password', RESTIC_REPOSITORY: resticRepo, RESTIC_CACHE_DIR: join(work, `restic-cache-${round}`) };
    execFileSync('restic', ['init', '--quiet'], { env: renv, stdio: 'ignore' });
  };
  const nj = (a: string[]) => measure(BIN, [...a, '-d', node]);
  const rs = (a: string[]) => measure('restic', a, renv);

  const rows: { step: string; nightjar: Measure; restic: Measure; runs: { nightjar: Measure[]; restic: Measure[] } }[] = [];
  const step = async (name: string, a: (round: number) => Promise<Measure>, b: (round: number) => Promise<Measure>, before?: (round: number) => void) => {
    const ns: Measure[] = [];
    const rsm: Measure[] = [];
    for (let round = 0; round < rounds; round++) {
      before?.(round);
      // Each tool goes first in every other round: the one going second finds in the page
      // cache what the first one just read (these machines page out what is not touched).
      if (round % 2 === 0) {
        ns.push(await a(round));
        rsm.push(await b(round));
      } else {
        rsm.push(await b(round));
        ns.push(await a(round));
      }
    }
    const n = median(ns);
    const r = median(rsm);
    rows.push({ step: name, nightjar: n, restic: r, runs: { nightjar: ns, restic: rsm } });
    const list = (m: Measure[]) => m.map((x) => (x.ms / 1000).toFixed(2)).join(' ');
    console.log(`${name.padEnd(22)} nightjar ${list(ns)} s  restic ${list(rsm)} s`);
  };

  await step('first backup', () => nj(['run-job', 'b1', '--json']), () => rs(['backup', '--quiet', data]), fresh);
  await step('unchanged re-run', () => nj(['run-job', 'b1', '--json']), () => rs(['backup', '--quiet', data]));
  await step('after 1% mutation', () => nj(['run-job', 'b1', '--json']), () => rs(['backup', '--quiet', data]), (round) => {
    execFileSync(process.execPath, [join(SHARED, 'mutate-dataset.mjs'), data, '1', String(round + 1)], { stdio: 'ignore' });
  });
  await step(
    'full restore',
    (round) => nj(['restore', 'latest', join(work, `restore-nightjar-${round}`)]),
    (round) => rs(['restore', 'latest', '--target', join(work, `restore-restic-${round}`)]),
  );

  const last = JSON.parse(rows[2]!.nightjar.stdout) as { stats: Record<string, unknown> };
  const first = JSON.parse(rows[0]!.nightjar.stdout) as { stats: Record<string, number> };
  console.log(
    `\nnightjar first run: ${first.stats.filesTotal} files, ${(first.stats.bytesTotal / 2 ** 20).toFixed(1)} MiB, ` +
      `${(first.stats.bytesWritten / 2 ** 20).toFixed(1)} MiB written; after mutation: ` +
      `${String(last.stats.filesNew)} new, ${String(last.stats.filesChanged)} changed, ${String(last.stats.filesRemoved)} removed`,
  );
  const targets: Record<string, number> = { 'first backup': 1.0, 'unchanged re-run': 0.5 };
  console.log(`\nmedians of ${rounds} round(s)\n${'step'.padEnd(22)}${'nightjar'.padStart(10)}${'restic'.padStart(10)}${'ratio'.padStart(8)}  target`);
  for (const r of rows) {
    const ratio = r.nightjar.ms / r.restic.ms;
    const t = targets[r.step];
    console.log(
      `${r.step.padEnd(22)}${(r.nightjar.ms / 1000).toFixed(2).padStart(9)}s${(r.restic.ms / 1000).toFixed(2).padStart(9)}s${ratio.toFixed(2).padStart(8)}` +
        (t !== undefined ? `  ≤ ${t.toFixed(1)} ${ratio <= t ? 'ok' : 'MISSED'}` : ''),
    );
  }
  const peak = (k: 'nightjar' | 'restic') => Math.max(...rows.flatMap((r) => r.runs[k].map((m) => m.rssKiB))) / 1024;
  const pr = peak('nightjar') / peak('restic');
  console.log(
    `${'peak RSS'.padEnd(22)}${peak('nightjar').toFixed(0).padStart(7)}MiB${peak('restic').toFixed(0).padStart(7)}MiB${pr.toFixed(2).padStart(8)}  ≤ 1.0 ${pr <= 1 ? 'ok' : 'MISSED'}`,
  );
  const maxRss = (m: Measure[]) => (Math.max(...m.map((x) => x.rssKiB)) / 1024).toFixed(0);
  for (const r of rows) console.log(`  rss ${r.step.padEnd(20)} nightjar ${maxRss(r.runs.nightjar)} MiB, restic ${maxRss(r.runs.restic)} MiB`);
  writeFileSync(join(work, 'results.json'), JSON.stringify(rows.map((r) => ({ step: r.step, nightjarMs: r.nightjar.ms, resticMs: r.restic.ms, nightjarRssKiB: r.nightjar.rssKiB, resticRssKiB: r.restic.rssKiB })), null, 2));
  if (!keep && existsSync(work)) rmSync(work, { recursive: true, force: true });
  else console.log(`kept ${work}`);
}

await main();
