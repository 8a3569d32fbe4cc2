/**
 * The catalogue of node.cfg sections and keys, and the "did you mean" helper. The
 * validator in ./config.ts checks every key against these lists; node.cfg.example
 * documents each one (a test keeps the two in step).
 */

export const SECTIONS = ['node', 'storage', 'clients', 'targets', 'backups'] as const;
export type SectionName = (typeof SECTIONS)[number];

export const NODE_KEYS = [
  'nickname',
  'web.listen',
  'web.port',
  'web.allow_remote',
  'web.hostnames',
  'bandwidth',
  'workers',
  'max_concurrent_jobs',
  'log_level',
  'timezone',
] as const;

export const STORAGE_KEYS = [
  'enabled',
  'listen',
  'port',
  'plain_http',
  'path',
  'reserved_space',
  'stale_after',
  'max_object_size',
] as const;

/** `[clients]` keys are `NAME.<key>`. */
export const CLIENT_KEYS = ['quota', 'append_only'] as const;

/** `[targets]` keys are `ALIAS = URL` and `ALIAS.<key>`; these apply to every kind. */
export const TARGET_COMMON_KEYS = ['passphrase_file', 'bandwidth', 'budget'] as const;
export const TARGET_NODE_KEYS = ['plain_http', 'token_file', 'fingerprint'] as const;
export const TARGET_S3_KEYS = [
  'endpoint',
  'region',
  'path_style',
  'access_key_file',
  'secret_key_file',
  'storage_class',
] as const;
export const TARGET_KEYS = [...TARGET_COMMON_KEYS, ...TARGET_NODE_KEYS, ...TARGET_S3_KEYS] as const;

/** `[backups]` keys are `JOB.<key>` and `defaults.<key>`. */
export const JOB_KEYS = [
  'source',
  'target',
  'frequency',
  'schedule',
  'allowed_times',
  'timezone',
  'bandwidth',
  'read_bandwidth',
  'budget',
  'exclude',
  'exclude_file',
  'max_file_size',
  'min_file_age',
  'one_file_system',
  'keep',
  'pre_command',
  'post_command',
  'on_failure',
  'on_overdue',
  'hook_timeout',
  'verify_frequency',
  'verify_read_data',
  'prune_frequency',
  'alert_after',
  'on_window_close',
  'max_delete_ratio',
  'enabled',
] as const;
export type JobKey = (typeof JOB_KEYS)[number];

/** The pseudo-job whose keys apply to every job; never a job itself. */
export const DEFAULTS_NAME = 'defaults';

/**
 * Names of jobs, targets and clients. Letters of either case are allowed, but two jobs
 * whose names differ only in case are refused (they would collide on case-insensitive
 * file systems and confuse people).
 */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const NAME_EXPECTED = 'a name of letters, digits, _ and - (starting with a letter or digit, at most 64 characters)';

/**
 * Keys that would hold a secret inline, in any section, mapped to the `*_file` key that
 * should be used instead. Matched against the last dotted part of a key.
 */
export const INLINE_SECRET_KEYS: ReadonlyMap<string, string> = new Map([
  ['passphrase', 'passphrase_file'],
  ['password', 'passphrase_file'],
  ['token', 'token_file'],
  ['access_key', 'access_key_file'],
  ['secret_key', 'secret_key_file'],
  ['secret', 'secret_key_file'],
]);

/** Levenshtein edit distance (insert, delete, substitute; each costs 1). */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The candidate closest to `word` (case-insensitive), or null when none is close enough
 * to be a plausible typo: at most 2 edits, and at most 1 for words of 4 letters or fewer.
 * Ties go to the earlier candidate.
 */
export function closestMatch(word: string, candidates: Iterable<string>): string | null {
  const limit = word.length <= 4 ? 1 : 2;
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return bestDistance <= limit ? best : null;
}
