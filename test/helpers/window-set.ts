import type { JobConfig, TimeWindow, Weekday, WindowSet } from '../../src/node/config/types.js';

const DAY_NAMES = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/**
 * A WindowSet from a compact spec, independent of the config parser so scheduling tests
 * do not depend on it: `ws('2200-0800')`, `ws('fri 2200-0600')`, `ws('mon-fri 0900-1700', 'sat 1000-1200')`.
 * `ws()` is the empty (always open) set.
 */
export function ws(...specs: string[]): WindowSet {
  const windows: TimeWindow[] = specs.map((spec) => {
    const parts = spec.trim().split(/\s+/);
    const range = parts.pop()!;
    const days: Weekday[] = parts.length === 0 ? [0, 1, 2, 3, 4, 5, 6] : parseDays(parts[0]!);
    const [a, b] = range.split('-') as [string, string];
    const minute = (t: string) => Number(t.slice(0, 2)) * 60 + Number(t.slice(2));
    return { days, startMinute: minute(a), endMinute: minute(b) };
  });
  return { spec: specs.join(',') || 'always', windows };
}

function parseDays(s: string): Weekday[] {
  const out = new Set<Weekday>();
  for (const part of s.split(',')) {
    const [a, b] = part.split('-');
    const from = DAY_NAMES.indexOf(a!);
    const to = b ? DAY_NAMES.indexOf(b) : from;
    for (let d = from; ; d = (d + 1) % 7) {
      out.add(d as Weekday);
      if (d === to) break;
    }
  }
  return [...out];
}

/**
 * A JobConfig with scheduling fields from `over` and harmless defaults elsewhere (cast: the
 * scheduler reads only the scheduling fields, and the config type grows independently).
 */
export function jobConfig(over: Partial<JobConfig> & { name: string }): JobConfig {
  const defaults: Partial<JobConfig> = {
    source: '/src',
    target: { alias: 't', name: over.name },
    frequencyMs: null,
    schedule: null,
    allowedTimes: ws(),
    timezone: 'Europe/Berlin',
    bandwidth: null,
    readBandwidth: null,
    budget: null,
    exclude: [],
    maxFileSize: null,
    minFileAgeMs: null,
    oneFileSystem: false,
    keep: null,
    preCommand: null,
    postCommand: null,
    onFailure: null,
    onOverdue: null,
    hookTimeoutMs: 60_000,
    verifyFrequencyMs: null,
    verifyReadDataPercent: 0,
    pruneFrequencyMs: null,
    alertAfterMs: null,
    onWindowClose: 'suspend',
    maxDeleteRatio: 0.5,
    enabled: true,
  };
  return { ...defaults, ...over } as JobConfig;
}
