import type { Clock } from './clock.js';

/**
 * What a command needs from the process, passed in so commands are testable and
 * main.ts has no side effects at import.
 */
export interface CliEnv {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean };
  readonly stderr: NodeJS.WritableStream;
  readonly clock: Clock;
  readonly env: NodeJS.ProcessEnv;
}

/** Exit codes shared by every command (restic's convention for partial runs). */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  partial: 3,
} as const;

/**
 * Thrown by a command to end with a given exit code and message (printed to stderr).
 * Anything else thrown ends with EXIT.failure.
 */
export class CliExit extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'CliExit';
  }
}
