import type { Clock } from '../node/clock.js';
import type { Database } from './db.js';
import { fromJson, toJson, type JsonValue } from './values.js';

/**
 * Small persistent key/value settings (`db.settings`), values as JSON: live bandwidth
 * overrides, the owner's choices made in the web UI, anything that must survive a
 * restart but does not belong in node.cfg. Keys are dotted names owned by their
 * feature (`bandwidth.override.node`, `bandwidth.override.job.b1`). Each call is atomic;
 * safe to call concurrently (last write wins).
 */
export class SettingsApi {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  /** The stored value, or undefined when the key is not set. */
  async get<T extends JsonValue = JsonValue>(key: string): Promise<T | undefined> {
    const row = await this.db.get<{ value: string }>('SELECT value FROM settings WHERE key = ?', [key]);
    return row ? fromJson<T>(row.value, `setting ${key}`) : undefined;
  }

  /** Stores `value` under `key`, replacing any previous value. */
  async set(key: string, value: JsonValue): Promise<void> {
    await this.db.run(
      `INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
      [key, toJson(value, `setting ${key}`), this.clock.nowMs()],
    );
  }

  /** Removes the key; returns whether it was set. */
  async delete(key: string): Promise<boolean> {
    const { changes } = await this.db.run('DELETE FROM settings WHERE key = ?', [key]);
    return changes > 0;
  }

  /** Every setting whose key starts with `prefix` (all when omitted), by key. */
  async list(prefix = ''): Promise<Map<string, JsonValue>> {
    // substr() rather than LIKE: keys may contain % and _.
    const rows = await this.db.all<{ key: string; value: string }>(
      'SELECT key, value FROM settings WHERE substr(key, 1, ?) = ? ORDER BY key',
      [prefix.length, prefix],
    );
    return new Map(rows.map((r) => [r.key, fromJson<JsonValue>(r.value, `setting ${r.key}`)]));
  }
}
