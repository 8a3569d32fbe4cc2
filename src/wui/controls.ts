/**
 * What the status page and API may do to the node: the ports the web app calls and the
 * daemon implements. The web app never touches the scheduler, stores or backupdb itself.
 */

import type { ClientStatus } from '../server/storage-service.js';

/** Owner controls over jobs. `job: null` means every job. */
export interface NodeControls {
  hasJob(job: string): boolean;
  pause(job: string | null): Promise<void>;
  resume(job: string | null): Promise<void>;
  /** `queued`, `already_running` or `paused`. */
  runNow(job: string, opts: { ignoreWindow?: boolean }): Promise<string>;
  /** False when the job had nothing to cancel. */
  cancel(job: string): Promise<boolean>;
}

/** Which limit a bandwidth change is about. */
export type BandwidthScope = { readonly kind: 'node' } | { readonly kind: 'target'; readonly name: string } | { readonly kind: 'job'; readonly name: string };

/** One limit as configured, as overridden at run time, and as in force now. */
export interface BandwidthLimitStatus {
  readonly scope: BandwidthScope;
  /** The node.cfg value (`512KiB/s`, a timetable, or `off`). */
  readonly configured: string;
  /** A live override in bytes/s (null = off), or undefined when none is set. */
  readonly override?: number | null;
  /** The limit in force right now, bytes/s, or null for none. */
  readonly effectiveBytesPerSecond: number | null;
}

export interface BandwidthStatus {
  readonly limits: readonly BandwidthLimitStatus[];
  /** Upload rate over the last few seconds, node-wide, bytes/s. */
  readonly currentBytesPerSecond: number;
}

/** Bytes sent in one time bucket, for the rate chart. */
export interface UsagePoint {
  readonly at: string;
  readonly bytes: number;
}

/**
 * Live bandwidth changes (issue 5). A change takes effect within a second, persists in the
 * backupdb across restarts, and `'default'` clears the override (back to node.cfg).
 */
export interface BandwidthControls {
  status(): Promise<BandwidthStatus>;
  set(scope: BandwidthScope, limit: number | null | 'default'): Promise<void>;
  /** Bytes sent per bucket since `since`, optionally for one job or target. */
  usage(query: { since: Date; job?: string; target?: string; bucketMs: number }): Promise<readonly UsagePoint[]>;
}

/** A port refused a request: `status` is the HTTP status the app answers with (400, 404, 409). */
export class WebPortError extends Error {
  override readonly name = 'WebPortError';
  constructor(
    readonly status: 400 | 403 | 404 | 409,
    message: string,
  ) {
    super(message);
  }
}

/** One run of a job's history, with its Box Backup-style statistics (times ISO). */
export interface RunSummary {
  readonly id: number;
  readonly job: string;
  readonly target: string;
  readonly kind: string;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly result: string;
  readonly snapshotId: string | null;
  readonly error: string | null;
  readonly stats: Readonly<Record<string, unknown>>;
}

/** One entry of the event log (time ISO). */
export interface EventSummary {
  readonly id: number;
  readonly at: string;
  readonly job: string | null;
  readonly level: string;
  readonly kind: string;
  readonly message: string;
}

/**
 * Read-only data the pages show besides the status: run history, the event log and a
 * job's configuration summary. Never returns a secret (no passphrase, token or key).
 */
export interface NodeData {
  /** Newest first, at most `limit`. */
  runs(job: string, limit: number): Promise<readonly RunSummary[]>;
  /** Newest first; `beforeId` pages back. */
  events(query: { job?: string; limit: number; beforeId?: number }): Promise<readonly EventSummary[]>;
  /** `key → value` of the job's settings in node.cfg terms, or null for an unknown job. */
  jobConfig(job: string): Readonly<Record<string, string>> | null;
}

/** A snapshot as the pages list it. */
export interface SnapshotSummary {
  readonly id: string;
  readonly time: string;
  readonly host: string;
  readonly job: string;
  readonly target: string;
  readonly source: string;
  readonly tags: readonly string[];
  readonly parent: string | null;
  readonly stats: Readonly<Record<string, unknown>> | null;
}

/** The snapshots of one target (`alias` from [targets]); `error` when it could not be read. */
export interface TargetSnapshots {
  readonly alias: string;
  readonly kind: string;
  readonly snapshots: readonly SnapshotSummary[];
  readonly error: string | null;
}

/** One entry of a directory in a snapshot; names are exact bytes (maybe not UTF-8). */
export interface SnapshotEntry {
  readonly name: Buffer;
  readonly type: string;
  readonly size: number;
  readonly mode: number;
  readonly mtime: string;
  readonly linkTarget: Buffer | null;
}

/** A restore started from the page; it runs in the background on the node. */
export interface RestoreTask {
  readonly id: number;
  readonly target: string;
  readonly snapshot: string;
  /** Display form of the path in the snapshot (`/` for all of it). */
  readonly path: string;
  readonly dest: string;
  readonly state: 'running' | 'done' | 'failed';
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly files: number;
  readonly bytes: number;
  readonly warnings: number;
  readonly error: string | null;
}

/**
 * Snapshots of the node's targets: list, browse, download one file, restore a path into a
 * directory on the node. `path` is the exact bytes of a slash-separated path inside the
 * snapshot; an unknown target, snapshot or path is a WebPortError(404), a path with `..`
 * or a bad destination a WebPortError(400 or 409). Safe to call concurrently.
 */
export interface SnapshotBrowser {
  targets(): Promise<readonly TargetSnapshots[]>;
  list(target: string, snapshot: string, path: Buffer): Promise<{ snapshot: SnapshotSummary; entries: readonly SnapshotEntry[] }>;
  /** Streams one regular file: `start` once with its name and size, then `write` per chunk (awaited). */
  download(
    target: string,
    snapshot: string,
    path: Buffer,
    sink: { start(info: { name: Buffer; size: number }): void; write(chunk: Buffer): Promise<void> },
  ): Promise<void>;
  /** Validates and starts a restore; resolves once it has started (not finished). */
  startRestore(req: { target: string; snapshot: string; path: Buffer; dest: string }): Promise<RestoreTask>;
  /** Restores started since the node started, newest first. */
  restores(): readonly RestoreTask[];
}

/** One client of the storage service (a peer that backs up to this node), as the page shows it. */
export type StorageClientView = Pick<
  ClientStatus,
  'name' | 'appendOnly' | 'quota' | 'usedBytes' | 'objects' | 'createdAt' | 'lastSeenAt' | 'lastBackupAt'
>;

/** The storage service this node offers its peers (present only with `[storage] enabled`). */
export interface StorageView {
  clients(): Promise<readonly StorageClientView[]>;
  /** Clients without a completed backup within `[storage] stale_after`. */
  alerts(): Promise<readonly { readonly name: string; readonly message: string }[]>;
}
