import type { Clock } from '../node/clock.js';
import type { RunProgress } from './backup-run.js';
import { formatBytes, formatCount, formatDuration } from './report.js';
import type { RestoreStats } from './restore.js';

/**
 * A one-line progress display for a TTY (stderr): redrawn in place with `\r`, at most
 * every `minIntervalMs`; `done()` clears it so the final report starts on a clean line.
 * Does nothing on a stream that is not a TTY. Not for concurrent use by two runs.
 */
export class ProgressBar {
  private lastDrawMs = -Infinity;
  private drawn = false;
  private readonly startMs: number;

  constructor(
    private readonly stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number },
    private readonly clock: Clock,
    private readonly minIntervalMs = 200,
  ) {
    this.startMs = clock.nowMs();
  }

  get enabled(): boolean {
    return this.stream.isTTY === true;
  }

  /** Draws a backup run's progress (percent against the previous snapshot's totals). */
  backup(p: RunProgress): void {
    const s = p.stats;
    const elapsed = this.clock.nowMs() - this.startMs;
    const done = s.filesUnchanged + s.filesNew + s.filesChanged;
    const rate = elapsed > 0 ? (s.bytesRead * 1000) / elapsed : 0;
    let bar = '';
    if (p.estimatedFiles > 0) {
      const frac = Math.min(1, done / p.estimatedFiles);
      bar = `${renderBar(frac, 20)} ${String(Math.floor(frac * 100)).padStart(3)}% `;
    }
    const text =
      `${bar}${formatCount(done)} files, ${formatBytes(s.bytesRead)} read (${formatBytes(rate)}/s), ` +
      `${formatBytes(s.bytesWritten)} stored, ${formatDuration(elapsed)}` +
      (s.warningCount ? `, ${formatCount(s.warningCount)} warnings` : '') +
      (p.currentPath ? `  ${p.currentPath}` : '');
    this.draw(text);
  }

  /** Draws a restore's progress (percent against the total bytes when known). */
  restore(s: RestoreStats, totalBytes: number): void {
    const elapsed = this.clock.nowMs() - this.startMs;
    const frac = totalBytes > 0 ? Math.min(1, s.bytes / totalBytes) : 0;
    const bar = totalBytes > 0 ? `${renderBar(frac, 20)} ${String(Math.floor(frac * 100)).padStart(3)}% ` : '';
    this.draw(`${bar}${formatCount(s.files)} files, ${formatBytes(s.bytes)} restored, ${formatDuration(elapsed)}`);
  }

  /** Draws arbitrary text (throttled). */
  draw(text: string, force = false): void {
    if (!this.enabled) return;
    const now = this.clock.nowMs();
    if (!force && now - this.lastDrawMs < this.minIntervalMs) return;
    this.lastDrawMs = now;
    const width = Math.max(20, (this.stream.columns ?? 100) - 1);
    const line = text.length > width ? text.slice(0, width - 1) + '…' : text;
    this.stream.write(`\r${line}\x1b[K`);
    this.drawn = true;
  }

  /** Clears the line. Idempotent. */
  done(): void {
    if (this.drawn) this.stream.write('\r\x1b[K');
    this.drawn = false;
  }
}

function renderBar(frac: number, width: number): string {
  const full = Math.round(frac * width);
  return `[${'='.repeat(full)}${' '.repeat(width - full)}]`;
}
