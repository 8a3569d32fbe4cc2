/**
 * The typed, frozen result of reading node.cfg (see node.cfg.example for every key).
 * Produced only by `loadConfig`/`parseConfig` in ./config.ts; consumers never re-parse.
 * Sizes and rates are in bytes (per second), durations in milliseconds, paths absolute.
 */

/** 0 = Sunday … 6 = Saturday, as Date#getDay(). */
export type Weekday = 0 | 1 | 2 | 3 | 4 | 5 | 6;

/**
 * One window of allowed time on some weekdays, in minutes after local midnight.
 * `startMinute > endMinute` means the window runs across midnight (2200-0600): it opens
 * on one of `days` and closes the following morning. `endMinute` may be 1440 (2400).
 */
export interface TimeWindow {
  readonly days: readonly Weekday[];
  readonly startMinute: number;
  readonly endMinute: number;
}

/** A list of windows (`2200-2400,0000-0800`, `mon-fri 2200-0600`). Empty = always allowed. */
export interface WindowSet {
  readonly spec: string;
  readonly windows: readonly TimeWindow[];
}

/** One entry of a bandwidth timetable; `bytesPerSecond: null` is `off` (no limit, as rclone). */
export interface RateEntry extends TimeWindow {
  readonly bytesPerSecond: number | null;
}

/**
 * `512KiB/s` (one entry, all week, all day) or a timetable
 * `mon-fri 0800-2200 256KiB/s, 2200-0800 off`. At a given time the first entry that
 * covers it applies; no entry covering it means no limit.
 */
export interface RateTimetable {
  readonly spec: string;
  readonly entries: readonly RateEntry[];
}

/** `20GiB/night` (per allowed window), `50GiB/day`, `200GiB/week`, `500GiB/month`. */
export interface Budget {
  readonly spec: string;
  readonly bytes: number;
  readonly per: 'window' | 'day' | 'week' | 'month';
}

/** `last 3, hourly 24, daily 7, weekly 4, monthly 12, yearly 3, within 30d`. */
export interface RetentionPolicy {
  readonly spec: string;
  readonly last?: number;
  readonly hourly?: number;
  readonly daily?: number;
  readonly weekly?: number;
  readonly monthly?: number;
  readonly yearly?: number;
  readonly withinMs?: number;
}

export type OnWindowClose = 'suspend' | 'finish_file' | 'finish_job';

export interface NodeSection {
  readonly nickname: string;
  /** Address the status page binds to (default 127.0.0.1). */
  readonly webListen: string;
  readonly webPort: number;
  readonly webAllowRemote: boolean;
  /** Extra Host header names accepted besides loopback names. */
  readonly webHostnames: readonly string[];
  readonly bandwidth: RateTimetable | null;
  /** Worker threads for chunking, hashing, compression, encryption. */
  readonly workers: number;
  readonly maxConcurrentJobs: number;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Default IANA time zone for windows and schedules. */
  readonly timezone: string;
}

export interface StorageSection {
  readonly enabled: boolean;
  readonly listen: string;
  readonly port: number;
  /** Serve plain HTTP instead of TLS (only when explicitly configured). */
  readonly plainHttp: boolean;
  /** Directory holding the clients' objects. */
  readonly path: string;
  readonly reservedSpace: number;
  readonly staleAfterMs: number;
  readonly maxObjectSize: number;
}

export interface ClientConfig {
  readonly name: string;
  readonly quota: number | null;
  readonly appendOnly: boolean;
}

export type TargetKind = 'local' | 'node' | 's3';

export interface TargetConfig {
  readonly alias: string;
  readonly kind: TargetKind;
  /** The value as written (`local:/mnt/usb/nightjar`, `node:https://h:7788`, `s3://b/p`). */
  readonly url: string;
  /** local: absolute directory; node: the https URL; s3: `bucket/prefix`. */
  readonly location: string;
  readonly passphraseFile: string;
  readonly bandwidth: RateTimetable | null;
  readonly budget: Budget | null;
  /** node: */
  readonly tokenFile: string | null;
  readonly fingerprint: string | null;
  /** s3: */
  readonly endpoint: string | null;
  readonly region: string | null;
  readonly pathStyle: boolean;
  readonly accessKeyFile: string | null;
  readonly secretKeyFile: string | null;
  readonly storageClass: string | null;
}

export interface JobConfig {
  readonly name: string;
  readonly source: string;
  /** From `target = alias` or `alias:name`; name defaults to the job name. */
  readonly target: { readonly alias: string; readonly name: string };
  /** Exactly one of frequencyMs / schedule is set. */
  readonly frequencyMs: number | null;
  readonly schedule: string | null;
  readonly allowedTimes: WindowSet;
  readonly timezone: string;
  readonly bandwidth: RateTimetable | null;
  readonly readBandwidth: RateTimetable | null;
  readonly budget: Budget | null;
  /** gitignore-style patterns, `defaults.exclude` first. */
  readonly exclude: readonly string[];
  /** `exclude_file` (absolute), whose patterns were read at load and appended to `exclude`. */
  readonly excludeFile: string | null;
  readonly maxFileSize: number | null;
  readonly minFileAgeMs: number | null;
  readonly oneFileSystem: boolean;
  readonly keep: RetentionPolicy | null;
  readonly preCommand: string | null;
  readonly postCommand: string | null;
  readonly onFailure: string | null;
  readonly onOverdue: string | null;
  readonly hookTimeoutMs: number;
  readonly verifyFrequencyMs: number | null;
  /** Share of the data read back by each scheduled verify, 0–100. */
  readonly verifyReadDataPercent: number;
  readonly pruneFrequencyMs: number | null;
  /** null = default (2× frequency plus the windows). */
  readonly alertAfterMs: number | null;
  readonly onWindowClose: OnWindowClose;
  /** Refuse a snapshot that lost more than this share (0–1) of the previous one's files. */
  readonly maxDeleteRatio: number;
  readonly enabled: boolean;
}

export interface NodeConfig {
  /** Absolute path of the node.cfg that was read. */
  readonly file: string;
  readonly nodeDir: string;
  readonly node: NodeSection;
  readonly storage: StorageSection;
  readonly clients: Readonly<Record<string, ClientConfig>>;
  readonly targets: Readonly<Record<string, TargetConfig>>;
  readonly jobs: Readonly<Record<string, JobConfig>>;
}

/** One problem found in node.cfg. */
export interface ConfigProblem {
  readonly file: string;
  readonly line: number | null;
  readonly section: string | null;
  readonly key: string | null;
  readonly found: string | null;
  readonly expected: string;
}
