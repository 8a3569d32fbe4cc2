import type { Clock } from '../node/clock.js';
import type { Database, SqlValue } from './db.js';
import { BackupDbError } from './errors.js';
import { fromJson, toJson, type JsonValue } from './values.js';

export type EventLevel = 'debug' | 'info' | 'warn' | 'error';
export const EVENT_LEVELS: readonly EventLevel[] = ['debug', 'info', 'warn', 'error'];

export interface NewEvent {
  /** The job it concerns; null/omitted for node-wide events. */
  job?: string | null;
  runId?: number | null;
  level: EventLevel;
  /** Stable machine name of what happened, e.g. `run.suspended`, `window.waiting`. */
  kind: string;
  /** Plain words for the owner: `b1 suspended at 08:00: 12,345 of 40,102 files done`. */
  message: string;
  detail?: JsonValue;
  /** When it happened, from the caller's Clock; defaults to the backupdb's clock now. */
  at?: Date;
}

export interface EventRecord {
  id: number;
  at: Date;
  job: string | null;
  runId: number | null;
  level: EventLevel;
  kind: string;
  message: string;
  detail: JsonValue | null;
}

export interface ListEventsOptions {
  /** Only this job's events (node-wide ones excluded). */
  job?: string;
  runId?: number;
  /** Only events at this level or above. */
  minLevel?: EventLevel;
  /** Page size; default 100. */
  limit?: number;
  /** Only events older than this id (the last id of the previous page). */
  beforeId?: number;
}

interface EventRow {
  id: number;
  at: number;
  job: string | null;
  run_id: number | null;
  level: string;
  kind: string;
  message: string;
  detail: string | null;
}

function toEventRecord(r: EventRow): EventRecord {
  return {
    id: r.id,
    at: new Date(r.at),
    job: r.job,
    runId: r.run_id,
    level: r.level as EventLevel,
    kind: r.kind,
    message: r.message,
    detail: r.detail === null ? null : fromJson<JsonValue>(r.detail, `event ${r.id} detail`),
  };
}

/**
 * The event log (`db.events`): what the scheduler and engine did, in plain words, for the
 * status page and `nightjar status`. Append-only apart from `pruneEvents`; safe to call
 * concurrently. Ids grow with insertion order, so paging by `beforeId` is stable.
 */
export class EventsApi {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /** Appends one event and returns it with its id. */
  async addEvent(event: NewEvent): Promise<EventRecord> {
    const row = this.row(event);
    const { lastId } = await this.db.run(
      'INSERT INTO events (at, job, run_id, level, kind, message, detail) VALUES (?, ?, ?, ?, ?, ?, ?)',
      row,
    );
    return {
      id: lastId,
      at: new Date(row[0] as number),
      job: event.job ?? null,
      runId: event.runId ?? null,
      level: event.level,
      kind: event.kind,
      message: event.message,
      detail: event.detail ?? null,
    };
  }

  /** Appends several events in one transaction, in order. */
  async addEvents(events: readonly NewEvent[]): Promise<void> {
    if (events.length === 0) return;
    const rows = events.map((e) => this.row(e));
    await this.db.transaction(() =>
      this.db.runBatch('INSERT INTO events (at, job, run_id, level, kind, message, detail) VALUES', rows),
    );
  }

  /** Newest first, filtered as `opts` says. */
  async listEvents(opts: ListEventsOptions = {}): Promise<EventRecord[]> {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (opts.job !== undefined) where.push('job = ?'), params.push(opts.job);
    if (opts.runId !== undefined) where.push('run_id = ?'), params.push(opts.runId);
    if (opts.beforeId !== undefined) where.push('id < ?'), params.push(opts.beforeId);
    if (opts.minLevel !== undefined && opts.minLevel !== 'debug') {
      const levels = EVENT_LEVELS.slice(EVENT_LEVELS.indexOf(opts.minLevel));
      where.push(`level IN (${levels.map(() => '?').join(', ')})`);
      params.push(...levels);
    }
    params.push(opts.limit ?? 100);
    const rows = await this.db.all<EventRow>(
      `SELECT * FROM events ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`,
      params,
    );
    return rows.map(toEventRecord);
  }

  /**
   * Deletes events that happened before `olderThan` (Uptime Kuma's clear-old-data; the
   * node calls it daily with its retention). Returns how many were deleted.
   */
  async pruneEvents(olderThan: Date): Promise<number> {
    const { changes } = await this.db.run('DELETE FROM events WHERE at < ?', [olderThan.getTime()]);
    return changes;
  }

  private row(e: NewEvent): SqlValue[] {
    if (!EVENT_LEVELS.includes(e.level)) {
      throw new BackupDbError('BACKUPDB_INVALID_ARGUMENT', `event level ${String(e.level)} is not one of ${EVENT_LEVELS.join(', ')}`);
    }
    return [
      (e.at ?? this.clock.now()).getTime(),
      e.job ?? null,
      e.runId ?? null,
      e.level,
      e.kind,
      e.message,
      e.detail === undefined ? null : toJson(e.detail, 'event detail'),
    ];
  }
}
