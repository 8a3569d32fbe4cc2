import type { Clock } from '../node/clock.js';
import type { Database, SqlValue } from './db.js';
import { BackupDbError } from './errors.js';

/** Recent usage is kept per minute: fine enough for a night budget opening at 22:30. */
export const USAGE_BUCKET_MS = 60_000;
/** Span recorded on rolled-up rows: one calendar day (as `dayStartOf` defines it). */
export const USAGE_DAY_MS = 86_400_000;

export interface UsageSample {
  /** Job that sent the bytes; '' for traffic of no job (prune, verify of the node). */
  job: string;
  /** Target alias the bytes went to. */
  target: string;
  bytes: number;
  /** When they were sent (default: the backupdb clock's now). */
  at?: Date;
}

export interface UsageFilter {
  /** Buckets starting at or after this time. */
  since: Date;
  /** Buckets starting before this time (default: no limit). */
  until?: Date;
  job?: string;
  target?: string;
}

export interface UsageRow {
  job: string;
  target: string;
  /** Start of the bucket. */
  at: Date;
  /** {@link USAGE_BUCKET_MS} for recent rows, {@link USAGE_DAY_MS} for rolled-up days. */
  spanMs: number;
  bytes: number;
}

/** UTC midnight of the day holding `ms`; pass a zone-aware function to `rollUp` for local days. */
export function utcDayStart(ms: number): number {
  return Math.floor(ms / USAGE_DAY_MS) * USAGE_DAY_MS;
}

/**
 * Bandwidth accounting (`db.usage`): bytes sent per (job, target, minute), rolled up into
 * one row per (job, target, day) once old. Totals are exact; their time resolution is
 * the bucket: a bucket counts wholly in the range its start falls in.
 * Writers call `addUsage` with batches (every few seconds), never per write; each call is
 * one transaction and concurrent calls add up correctly.
 */
export class UsageApi {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /** Adds the samples' bytes to their minute buckets (samples in one bucket are merged first). */
  async addUsage(batch: readonly UsageSample[]): Promise<void> {
    if (batch.length === 0) return;
    const now = this.clock.nowMs();
    const merged = new Map<string, [string, string, number, number]>();
    for (const s of batch) {
      if (!Number.isSafeInteger(s.bytes) || s.bytes < 0) {
        throw new BackupDbError('BACKUPDB_INVALID_ARGUMENT', `usage bytes must be a non-negative integer, got ${s.bytes}`);
      }
      if (s.bytes === 0) continue;
      const bucket = Math.floor((s.at?.getTime() ?? now) / USAGE_BUCKET_MS) * USAGE_BUCKET_MS;
      const key = `${s.job}\0${s.target}\0${bucket}`;
      const row = merged.get(key);
      if (row) row[3] += s.bytes;
      else merged.set(key, [s.job, s.target, bucket, s.bytes]);
    }
    if (merged.size === 0) return;
    const rows = [...merged.values()].map(([job, target, bucket, bytes]) => [job, target, bucket, USAGE_BUCKET_MS, bytes]);
    await this.db.transaction(() =>
      this.db.runBatch(
        'INSERT INTO usage (job, target, bucket_at, span_ms, bytes) VALUES',
        rows,
        'ON CONFLICT (job, target, bucket_at, span_ms) DO UPDATE SET bytes = bytes + excluded.bytes',
      ),
    );
  }

  /** Total bytes sent in buckets starting within [since, until), for the job/target when given. */
  async usageSince(since: Date, filter: Omit<UsageFilter, 'since'> = {}): Promise<number> {
    const { where, params } = this.where({ ...filter, since });
    const row = await this.db.get<{ total: number | null }>(`SELECT sum(bytes) AS total FROM usage WHERE ${where}`, params);
    return row?.total ?? 0;
  }

  /** The rows in range, oldest first (for charts; group them as the chart needs). */
  async listUsage(filter: UsageFilter): Promise<UsageRow[]> {
    const { where, params } = this.where(filter);
    const rows = await this.db.all<{ job: string; target: string; bucket_at: number; span_ms: number; bytes: number }>(
      `SELECT job, target, bucket_at, span_ms, bytes FROM usage WHERE ${where} ORDER BY bucket_at, job, target`,
      params,
    );
    return rows.map((r) => ({ job: r.job, target: r.target, at: new Date(r.bucket_at), spanMs: r.span_ms, bytes: r.bytes }));
  }

  /**
   * Merges every sub-day row that started before `olderThan` into one row per
   * (job, target, day), the day being `dayStartOf(bucketStart)` (default UTC days; pass the
   * node's time zone to get local days). Totals are unchanged. Idempotent; one
   * transaction. Returns the number of fine rows merged away.
   */
  async rollUp(olderThan: Date, dayStartOf: (ms: number) => number = utcDayStart): Promise<number> {
    return this.db.transaction(async () => {
      const rows = await this.db.all<{ job: string; target: string; bucket_at: number; bytes: number }>(
        'SELECT job, target, bucket_at, bytes FROM usage WHERE span_ms < ? AND bucket_at < ?',
        [USAGE_DAY_MS, olderThan.getTime()],
      );
      if (rows.length === 0) return 0;
      const days = new Map<string, SqlValue[]>();
      for (const r of rows) {
        const day = dayStartOf(r.bucket_at);
        const key = `${r.job}\0${r.target}\0${day}`;
        const d = days.get(key);
        if (d) (d[4] as number) += r.bytes;
        else days.set(key, [r.job, r.target, day, USAGE_DAY_MS, r.bytes]);
      }
      await this.db.run('DELETE FROM usage WHERE span_ms < ? AND bucket_at < ?', [USAGE_DAY_MS, olderThan.getTime()]);
      await this.db.runBatch(
        'INSERT INTO usage (job, target, bucket_at, span_ms, bytes) VALUES',
        [...days.values()],
        'ON CONFLICT (job, target, bucket_at, span_ms) DO UPDATE SET bytes = bytes + excluded.bytes',
      );
      return rows.length;
    });
  }

  /** Deletes all rows (any span) starting before `olderThan`; returns how many. */
  async pruneUsage(olderThan: Date): Promise<number> {
    const { changes } = await this.db.run('DELETE FROM usage WHERE bucket_at < ?', [olderThan.getTime()]);
    return changes;
  }

  private where(f: UsageFilter): { where: string; params: SqlValue[] } {
    const parts = ['bucket_at >= ?'];
    const params: SqlValue[] = [f.since.getTime()];
    if (f.until !== undefined) parts.push('bucket_at < ?'), params.push(f.until.getTime());
    if (f.job !== undefined) parts.push('job = ?'), params.push(f.job);
    if (f.target !== undefined) parts.push('target = ?'), params.push(f.target);
    return { where: parts.join(' AND '), params };
  }
}
