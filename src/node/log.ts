import { appendFileSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock } from './clock.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Rotate the log file when it passes this size; one old generation is kept. */
const ROTATE_BYTES = 10 * 1024 * 1024;

/**
 * The node log: one line per message, `2026-11-24T05:46:18.123Z INFO message`, to a
 * stream (stdout) and optionally to `logs/nightjar.log`. Writes are synchronous so a line
 * logged right before exit is never lost; the daemon logs transitions, not per-file noise.
 */
export class Logger {
  private level: LogLevel;

  constructor(
    private readonly clock: Clock,
    private readonly out: NodeJS.WritableStream | null,
    private readonly logDir: string | null,
    level: LogLevel = 'info',
  ) {
    this.level = level;
    if (logDir) mkdirSync(logDir, { recursive: true });
  }

  setLevel(level: LogLevel): void {
    this.level = level;
  }

  debug(msg: string): void {
    this.write('debug', msg);
  }
  info(msg: string): void {
    this.write('info', msg);
  }
  warn(msg: string): void {
    this.write('warn', msg);
  }
  error(msg: string): void {
    this.write('error', msg);
  }

  private write(level: LogLevel, msg: string): void {
    if (RANK[level] < RANK[this.level]) return;
    const line = `${this.clock.now().toISOString()} ${level.toUpperCase().padEnd(5)} ${msg}\n`;
    this.out?.write(line);
    if (this.logDir) this.appendToFile(line);
  }

  private appendToFile(line: string): void {
    const file = join(this.logDir!, 'nightjar.log');
    try {
      if ((statSync(file, { throwIfNoEntry: false })?.size ?? 0) > ROTATE_BYTES) renameSync(file, `${file}.1`);
      appendFileSync(file, line);
    } catch {
      // A full or read-only disk must not take the node down; stdout still has the line.
    }
  }
}
