import type { RunResult } from './backup-run.js';
import type { RestoreStats } from './restore.js';
import type { RunStats } from './run-stats.js';

/** `1,234,567` (by hand: toLocaleString costs ~15 ms of ICU set-up in a short CLI run). */
export function formatCount(n: number): string {
  return String(Math.round(n)).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** IEC units with one decimal: `0 B`, `512 B`, `1.5 KiB`, `320.4 MiB`. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** `850 ms`, `3.2 s`, `4m 05s`, `2h 03m`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
}

/** The report as `run-job --json` prints it (stable keys; stats as stored in the snapshot). */
export interface RunReportJson {
  job: string;
  status: RunResult['status'];
  dryRun: boolean;
  snapshot: string | null;
  refusal: { code: string; message: string } | null;
  error: string | null;
  stats: RunStats;
}

/** The machine-readable report of a run. */
export function runReportJson(job: string, result: RunResult): RunReportJson {
  return {
    job,
    status: result.status,
    dryRun: result.stats.dryRun === true,
    snapshot: result.snapshot?.id ?? null,
    refusal: result.refusal ? { code: result.refusal.code, message: result.refusal.message } : null,
    error: result.error ?? null,
    stats: result.stats,
  };
}

/**
 * The final report of a run for people, Box Backup style: what was on the source, what
 * was unchanged, new, changed (and why), removed, what was read, stored after dedup and
 * written after compression and encryption, the warnings (at most `maxWarnings` listed)
 * and the duration.
 */
export function formatRunReport(job: string, result: RunResult, maxWarnings = 20): string {
  const s = result.stats;
  const lines: string[] = [];
  const head =
    result.status === 'refused'
      ? `job ${job}: REFUSED, no snapshot written`
      : result.status === 'failed'
        ? `job ${job}: FAILED, no snapshot written`
        : result.status === 'cancelled'
          ? `job ${job}: cancelled, no snapshot written (work stored so far is kept for the next run)`
          : s.dryRun
            ? `job ${job}: dry run ${result.status === 'partial' ? 'with warnings' : 'complete'}, nothing written`
            : `job ${job}: ${result.status}, snapshot ${result.snapshot?.id.slice(0, 12) ?? '?'}`;
  lines.push(head);
  if (result.refusal) lines.push(`  ${result.refusal.message}`);
  if (result.error) lines.push(`  error: ${result.error}`);
  const row = (label: string, value: string) => lines.push(`  ${label.padEnd(26)}${value}`);
  const cb = (files: number, bytes: number) => `${formatCount(files).padStart(11)}  (${formatBytes(bytes)})`;
  row('files on source', cb(s.filesTotal, s.bytesTotal));
  row('unchanged (not read)', cb(s.filesUnchanged, s.bytesUnchanged));
  row('new', cb(s.filesNew, s.bytesNewFiles));
  const r = s.changedReasons;
  const why = [
    r.size && `size ${formatCount(r.size)}`,
    r.mtime && `mtime ${formatCount(r.mtime)}`,
    r.ctime && `ctime ${formatCount(r.ctime)}`,
    r.inode && `inode ${formatCount(r.inode)}`,
  ].filter(Boolean);
  row('changed', cb(s.filesChanged, s.bytesChangedFiles) + (why.length ? `  because of ${why.join(', ')}` : ''));
  row('removed since previous', formatCount(s.filesRemoved).padStart(11));
  row('directories / symlinks', `${formatCount(s.dirs).padStart(11)} / ${formatCount(s.symlinks)}` + (s.specials ? `, ${formatCount(s.specials)} special files` : ''));
  const k = s.skipped;
  const skipped = [
    k.excluded && `${formatCount(k.excluded)} excluded`,
    k.tooLarge && `${formatCount(k.tooLarge)} over max_file_size`,
    k.tooYoung && `${formatCount(k.tooYoung)} younger than min_file_age`,
    k.otherFilesystem && `${formatCount(k.otherFilesystem)} other file systems`,
    k.repository && `${formatCount(k.repository)} repository directory`,
  ].filter(Boolean);
  if (skipped.length) row('skipped', skipped.join(', '));
  row(s.dryRun ? 'would read' : 'bytes read', formatBytes(s.bytesRead).padStart(11));
  if (!s.dryRun) {
    row('new after dedup', formatBytes(s.bytesNew).padStart(11));
    row('written (compr.+encr.)', formatBytes(s.bytesWritten).padStart(11));
  }
  row('warnings', formatCount(s.warningCount).padStart(11));
  for (const w of s.warnings.slice(0, maxWarnings)) lines.push(`    ${w.path}: ${w.message}`);
  if (s.warningCount > Math.min(maxWarnings, s.warnings.length)) {
    lines.push(`    … and ${formatCount(s.warningCount - Math.min(maxWarnings, s.warnings.length))} more (see --json)`);
  }
  row('duration', formatDuration(s.durationMs).padStart(11));
  return lines.join('\n') + '\n';
}

/** The summary of a restore for people. */
export function formatRestoreReport(dest: string, s: RestoreStats, durationMs: number, maxWarnings = 20): string {
  const lines = [
    `restored into ${dest}: ${formatCount(s.files)} files (${formatBytes(s.bytes)}), ${formatCount(s.dirs)} directories, ` +
      `${formatCount(s.symlinks)} symlinks, ${formatCount(s.hardLinks)} hard links, ${formatCount(s.specials)} special files in ${formatDuration(durationMs)}`,
  ];
  if (s.skipped) lines.push(`  ${formatCount(s.skipped)} entries not recreated (sockets, devices)`);
  if (s.warningCount) {
    lines.push(`  ${formatCount(s.warningCount)} warnings:`);
    for (const w of s.warnings.slice(0, maxWarnings)) lines.push(`    ${w.path}: ${w.message}`);
  }
  return lines.join('\n') + '\n';
}
