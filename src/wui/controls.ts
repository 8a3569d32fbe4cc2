/**
 * What the status page and API may do to the node: the ports the web app calls and the
 * daemon implements. The web app never touches the scheduler, stores or backupdb itself.
 */

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
