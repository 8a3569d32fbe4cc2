import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Clock } from './clock.js';
import type { NodeDirLayout } from './node-dir.js';

/** The reference config shipped with the package; create-node copies it. */
export const EXAMPLE_CONFIG_URL = new URL('../../../node.cfg.example', import.meta.url);

export class NodeExistsError extends Error {
  readonly code = 'NODE_EXISTS';
  constructor(readonly configFile: string) {
    super(`a node already exists here (${configFile}); refusing to overwrite it`);
  }
}

export interface CreateNodeResult {
  /** Job names created for the given sources, in order (b1, b2, …). */
  readonly jobs: readonly string[];
}

/**
 * Creates a node directory: node.cfg (the example, with one daily job per source backing
 * up to the embedded `local` repository inside the directory), `private/` (mode 0700)
 * holding a random API token and a random repository passphrase, and `logs/`.
 * Refuses (NodeExistsError) when the directory already holds a node.cfg; never overwrites.
 */
export async function createNode(layout: NodeDirLayout, sources: readonly string[]): Promise<CreateNodeResult> {
  if (existsSync(layout.configFile)) throw new NodeExistsError(layout.configFile);
  await mkdir(layout.root, { recursive: true });
  await mkdir(layout.privateDir, { recursive: true, mode: 0o700 });
  await chmod(layout.privateDir, 0o700);
  await mkdir(layout.logDir, { recursive: true });
  await writeSecret(layout.apiTokenFile, randomBytes(32).toString('base64url'));
  await writeSecret(layout.passphraseFile, randomBytes(32).toString('base64url'));

  const jobs = sources.map((_, i) => `b${i + 1}`);
  const jobLines = sources.flatMap((source, i) => [
    '',
    `${jobs[i]}.source = ${resolve(source)}`,
    `${jobs[i]}.target = local`,
    `${jobs[i]}.frequency = 1d`,
  ]);
  const example = await readFile(EXAMPLE_CONFIG_URL, 'utf8');
  const text = jobLines.length > 0 ? `${example.trimEnd()}\n${jobLines.join('\n')}\n` : example;
  // 'wx': if another create-node raced us, fail rather than overwrite its config.
  await writeFile(layout.configFile, text, { flag: 'wx', mode: 0o644 });
  return { jobs };
}

/**
 * Creates the embedded `local` repository of a new node, as `restic init` would: a
 * problem with its directory shows at once, its key is derived once and cached in
 * private/, and the first backup only opens it. Returns its location, or null when
 * node.cfg names no `local` target.
 */
export async function createLocalRepository(layout: NodeDirLayout, clock: Clock): Promise<string | null> {
  const [{ loadConfig }, { withTarget }] = await Promise.all([import('./config/config.js'), import('./open-target.js')]);
  const target = (await loadConfig(layout.configFile, layout.root)).targets.local;
  if (!target) return null;
  await withTarget(target, { clock }, async () => {});
  return target.location;
}

async function writeSecret(file: string, value: string): Promise<void> {
  if (existsSync(file)) return; // keep secrets a half-finished earlier create-node made
  await writeFile(file, `${value}\n`, { flag: 'wx', mode: 0o600 });
}
