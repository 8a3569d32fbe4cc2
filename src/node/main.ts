import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { systemClock, testClockFromEnv } from './clock.js';
import { CliExit, EXIT, type CliEnv } from './cli-env.js';
import { registerCreateNode } from './commands/create-node.js';
import { registerStart } from './commands/start.js';
import { registerRunJob } from './commands/run-job.js';
import { registerSnapshots } from './commands/snapshots.js';
import { registerLs } from './commands/ls.js';
import { registerRestore } from './commands/restore.js';
import { registerCheck } from './commands/check.js';
import { registerAddClient } from './commands/add-client.js';
import { registerStatus } from './commands/status.js';
import { registerClients } from './commands/clients.js';
import { registerPauseResume } from './commands/pause-resume.js';
import { registerForget } from './commands/forget.js';
import { registerCheckHealth } from './commands/check-health.js';
import { registerPrune } from './commands/prune.js';

const PACKAGE_JSON_URL = new URL('../../../package.json', import.meta.url);

/** Builds the `nightjar` program; each command lives in ./commands/<name>.ts. */
export function buildProgram(env: CliEnv): Command {
  const version = (JSON.parse(readFileSync(PACKAGE_JSON_URL, 'utf8')) as { version: string }).version;
  const program = new Command('nightjar')
    .description('a backup node that runs your backups inside the hours you allow')
    .version(version, '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => env.stdout.write(s),
      writeErr: (s) => env.stderr.write(s),
    })
    .exitOverride();
  registerCreateNode(program, env);
  registerStart(program, env);
  registerRunJob(program, env);
  registerSnapshots(program, env);
  registerLs(program, env);
  registerRestore(program, env);
  registerCheck(program, env);
  registerAddClient(program, env);
  registerStatus(program, env);
  registerClients(program, env);
  registerPauseResume(program, env);
  registerForget(program, env);
  registerCheckHealth(program, env);
  registerPrune(program, env);
  // Commander's exitOverride applies per command; subcommands inherit it when set first.
  for (const cmd of program.commands) cmd.exitOverride().configureOutput(program.configureOutput());
  return program;
}

/**
 * Runs the CLI and returns the exit code: 0 ok, 1 failure, 2 usage or config error,
 * 3 partial (a run that ended with warnings). Never calls process.exit itself.
 */
export async function main(argv: string[], given?: CliEnv): Promise<number> {
  let env: CliEnv;
  try {
    env = given ?? processEnv();
  } catch (err) {
    process.stderr.write(`nightjar: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.usage;
  }
  const program = buildProgram(env);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // help and version "errors" are successful exits
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (err instanceof CliExit) {
      if (err.message) env.stderr.write(`nightjar: ${err.message}\n`);
      return err.exitCode;
    }
    // An error with a code (the store's, the repository's, the backupdb's, the system's)
    // says what went wrong in its message; anything else is a bug: its stack helps.
    const coded = err instanceof Error && typeof (err as { code?: unknown }).code === 'string';
    env.stderr.write(`nightjar: ${err instanceof Error ? (coded ? err.message : (err.stack ?? err.message)) : String(err)}\n`);
    return EXIT.failure;
  }
}

function processEnv(): CliEnv {
  // testClockFromEnv: a test hook (NIGHTJAR_TEST_CLOCK with NODE_ENV=test), see clock.ts.
  return { stdout: process.stdout, stderr: process.stderr, clock: testClockFromEnv(process.env) ?? systemClock, env: process.env };
}
