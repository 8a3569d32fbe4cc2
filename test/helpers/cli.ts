import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** The CLI entry point, as users run it. */
export const NIGHTJAR_BIN = new URL('../../../bin/nightjar.js', import.meta.url).pathname;

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `nightjar ARGS…` to completion in a child process. */
export function runCli(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<CliResult> {
  const child = spawnCli(args, opts.env);
  return waitForExit(child, opts.timeoutMs ?? 60_000);
}

/** A long-running `nightjar` child whose output is collected as it arrives. */
export interface CliProcess {
  readonly child: ChildProcess;
  output(): string;
  /** Resolves when the combined output matches `pattern`; rejects after `timeoutMs` or on exit. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<CliResult>;
}

export function startCli(args: string[], env?: NodeJS.ProcessEnv): CliProcess {
  const child = spawnCli(args, env);
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = waitForExit(child, 120_000);
  return {
    child,
    output: () => out,
    exited,
    waitFor(pattern, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(out);
          if (m) {
            done();
            resolve(m[0]);
          }
        };
        const timer = setTimeout(() => {
          done();
          reject(new Error(`timed out waiting for ${pattern}; output so far:\n${out}`));
        }, timeoutMs);
        const onExit = () => {
          setImmediate(() => {
            check();
            if (listeners.has(check)) {
              done();
              reject(new Error(`process exited before ${pattern}; output:\n${out}`));
            }
          });
        };
        const done = () => {
          clearTimeout(timer);
          listeners.delete(check);
          child.off('exit', onExit);
        };
        listeners.add(check);
        child.on('exit', onExit);
        check();
      });
    },
  };
}

/**
 * Runs bin/nightjar.js as a command, as an installed `nightjar` runs (through its sh
 * lines, node found on PATH), to completion. `env` goes on top of this process's
 * environment; a key set to undefined is left out.
 */
export function runAsCommand(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60_000): Promise<CliResult> {
  const merged: NodeJS.ProcessEnv = { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`, ...env };
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k];
  return waitForExit(spawn(NIGHTJAR_BIN, args, { env: merged, stdio: ['ignore', 'pipe', 'pipe'] }), timeoutMs);
}

function spawnCli(args: string[], env?: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [NIGHTJAR_BIN, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`nightjar did not exit within ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A fresh temporary directory, removed by the returned cleanup. */
export async function tempDir(prefix = 'nightjar-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
