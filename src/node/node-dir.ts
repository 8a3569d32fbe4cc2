import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Where everything lives inside a node directory. The one place that knows these names.
 */
export interface NodeDirLayout {
  readonly root: string;
  readonly configFile: string;
  /** Keys, tokens, passphrases; mode 0700. */
  readonly privateDir: string;
  /** Token for the status page and API (the Tahoe name). */
  readonly apiTokenFile: string;
  /** Default repository passphrase file for targets. */
  readonly passphraseFile: string;
  readonly backupDbFile: string;
  readonly logDir: string;
  /** Holds the pid of the running node; its presence with a live pid locks the directory. */
  readonly pidFile: string;
  /** The embedded default local repository. */
  readonly defaultRepository: string;
  /** URL of the running node's status page and API (Tahoe's node.url); absent when stopped. */
  readonly nodeUrlFile: string;
}

export const DEFAULT_NODE_DIR = join(homedir(), '.nightjar');

export function nodeDirLayout(dir: string = DEFAULT_NODE_DIR): NodeDirLayout {
  const root = resolve(dir);
  const privateDir = join(root, 'private');
  return {
    root,
    configFile: join(root, 'node.cfg'),
    privateDir,
    apiTokenFile: join(privateDir, 'api_auth_token'),
    passphraseFile: join(privateDir, 'passphrase'),
    backupDbFile: join(root, 'backupdb.sqlite'),
    logDir: join(root, 'logs'),
    pidFile: join(root, 'nightjar.pid'),
    defaultRepository: join(root, 'repository'),
    nodeUrlFile: join(root, 'node.url'),
  };
}
