import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '../src/node/clock.js';
import { createWebApp } from '../src/wui/app.js';
import type { BandwidthControls, NodeData, RunSummary } from '../src/wui/controls.js';
import { lastRunFacts, renderMetrics } from '../src/wui/metrics.js';
import { listenWeb, type WebServer } from '../src/wui/server.js';
import type { JobStatus, NodeStatus } from '../src/wui/status.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A strict little parser of the Prometheus text format 0.0.4: HELP/TYPE comments, then
 * samples `name{label="value",…} number`; every sample's family has a TYPE line first;
 * label values with \\, \" and \n escapes. Throws on anything else.
 */
function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string> } {
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
  for (const [i, line] of text.slice(0, -1).split('\n').entries()) {
    const where = `line ${i + 1}: ${line}`;
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line);
      assert.ok(m, where);
      if (m[1] === 'TYPE') {
        assert.ok(['gauge', 'counter', 'histogram', 'summary', 'untyped'].includes(m[3]!), where);
        assert.ok(!types.has(m[2]!), `TYPE given twice: ${where}`);
        types.set(m[2]!, m[3]!);
      }
      continue;
    }
    const name = NAME.exec(line)?.[0];
    assert.ok(name, where);
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith('{')) {
      rest = rest.slice(1);
      while (!rest.startsWith('}')) {
        const lm = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"/.exec(rest);
        assert.ok(lm, where);
        labels[lm[1]!] = lm[2]!.replace(/\\(["\\n])/g, (_, c: string) => (c === 'n' ? '\n' : c));
        rest = rest.slice(lm[0].length);
        if (rest.startsWith(',')) rest = rest.slice(1);
      }
      rest = rest.slice(1);
    }
    const vm = /^ (-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|\+Inf|-Inf))$/.exec(rest);
    assert.ok(vm, where);
    assert.ok(types.has(name), `sample before its TYPE: ${where}`);
    samples.push({ name, labels, value: Number(vm[1]) });
  }
  return { samples, types };
}

function jobStatus(over: Partial<JobStatus>): JobStatus {
  return {
    name: 'b1', source: '/src', target: 'usb:b1', schedule: 'every 1d', allowedTimes: 'any time', timezone: 'UTC', state: 'idle',
    label: 'idle', paused: false, enabled: true, nextStartAt: '2026-11-25T00:00:00.000Z', nextStartReason: null, window: null,
    lastResult: 'completed', lastCompletedAt: '2026-11-24T01:00:00.000Z', lastError: null, progress: null, overdue: false, ...over,
  };
}

const STATUS: NodeStatus = {
  nickname: 'home "nas" \\ one',
  startedAt: '2026-11-24T00:00:00.000Z',
  now: '2026-11-24T12:00:00.000Z',
  running: true,
  jobs: [
    jobStatus({}),
    jobStatus({ name: 'photos', state: 'suspended', lastCompletedAt: null, lastResult: null, overdue: true, paused: true, lastVerify: { endedAt: '2026-11-24T02:00:00.000Z', result: 'failed', error: 'x' } }),
  ],
};

const RUNS: RunSummary[] = [
  { id: 3, job: 'b1', target: 'usb', kind: 'backup', startedAt: '2026-11-24T00:00:00.000Z', endedAt: null, result: 'running', snapshotId: null, error: null, stats: {} },
  {
    id: 2, job: 'b1', target: 'usb', kind: 'backup', startedAt: '2026-11-24T00:59:00.000Z', endedAt: '2026-11-24T01:00:00.000Z', result: 'completed',
    snapshotId: 'ab', error: null, stats: { durationMs: 61_500, bytesSent: 123_456, filesSeen: 42 },
  },
];

const BANDWIDTH = {
  currentBytesPerSecond: 1000.5,
  limits: [
    { scope: { kind: 'node' as const }, configured: '1MiB/s', effectiveBytesPerSecond: 1_048_576 },
    { scope: { kind: 'job' as const, name: 'photos' }, configured: 'off', effectiveBytesPerSecond: null },
  ],
  budgets: [{ scope: 'target', name: 'usb', bytes: 1000, usedBytes: 300 }],
};

describe('renderMetrics', () => {
  it('parses as Prometheus text and carries the per-job and node facts', () => {
    const lastRuns = new Map([['b1', lastRunFacts(RUNS)], ['photos', null]]);
    const text = renderMetrics(STATUS, lastRuns, BANDWIDTH);
    const { samples, types } = parsePrometheus(text);
    const get = (name: string, labels: Record<string, string> = {}) =>
      samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).map((s) => s.value);
    assert.equal(types.get('nightjar_job_overdue'), 'gauge');
    assert.deepEqual(get('nightjar_up', { node: 'home "nas" \\ one' }), [1]);
    assert.deepEqual(get('nightjar_job_last_success_timestamp_seconds', { job: 'b1' }), [Date.parse('2026-11-24T01:00:00Z') / 1000]);
    assert.deepEqual(get('nightjar_job_last_success_timestamp_seconds', { job: 'photos' }), [], 'never succeeded: no sample');
    assert.deepEqual(get('nightjar_job_last_run_duration_seconds', { job: 'b1' }), [61.5]);
    assert.deepEqual(get('nightjar_job_last_run_sent_bytes', { job: 'b1' }), [123_456]);
    assert.deepEqual(get('nightjar_job_last_run_files', { job: 'b1' }), [42]);
    assert.deepEqual(get('nightjar_job_state', { job: 'photos', state: 'suspended' }), [1]);
    assert.equal(get('nightjar_job_state', { job: 'photos' }).reduce((a, b) => a + b), 1, 'one state at a time');
    assert.deepEqual(get('nightjar_job_overdue', { job: 'photos' }), [1]);
    assert.deepEqual(get('nightjar_job_overdue', { job: 'b1' }), [0]);
    assert.deepEqual(get('nightjar_job_paused', { job: 'photos' }), [1]);
    assert.deepEqual(get('nightjar_job_last_verify_success', { job: 'photos' }), [0]);
    assert.deepEqual(get('nightjar_job_last_verify_success', { job: 'b1' }), []);
    assert.deepEqual(get('nightjar_upload_rate_bytes_per_second'), [1000.5]);
    assert.deepEqual(get('nightjar_bandwidth_limit_bytes_per_second', { scope: 'node' }), [1_048_576]);
    assert.deepEqual(get('nightjar_bandwidth_limit_bytes_per_second', { scope: 'job' }), [], 'no limit: no sample');
    assert.deepEqual(get('nightjar_budget_left_bytes', { scope: 'target', name: 'usb' }), [700]);
  });

  it('without bandwidth controls the node-wide families are left out, still valid', () => {
    const { samples } = parsePrometheus(renderMetrics({ ...STATUS, jobs: [] }, new Map(), null));
    assert.deepEqual(samples.map((s) => s.name), ['nightjar_up']);
  });
});

describe('GET /metrics', () => {
  const TOKEN = 'm'.repeat(43);
  let server: WebServer;
  before(async () => {
    const data: NodeData = { runs: async () => RUNS, events: async () => [], jobConfig: () => null };
    const bandwidth = { status: async () => BANDWIDTH, set: async () => {}, usage: async () => [] } as unknown as BandwidthControls;
    server = await listenWeb(createWebApp({ clock: systemClock, token: TOKEN, hostnames: [], status: async () => STATUS, data, bandwidth }), '127.0.0.1', 0);
  });
  after(() => server.close());

  it('needs the token', async () => {
    const r = await fetch(`${server.url}/metrics`);
    assert.equal(r.status, 401);
    assert.doesNotMatch(await r.text(), /nightjar_job/);
  });

  it('serves the exposition with the bearer token', async () => {
    const r = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const { samples } = parsePrometheus(await r.text());
    assert.ok(samples.some((s) => s.name === 'nightjar_job_last_run_duration_seconds' && s.value === 61.5));
  });
});
