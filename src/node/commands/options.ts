import { Option } from 'commander';
import { DEFAULT_NODE_DIR } from '../node-dir.js';

/** `-d, --node-directory DIR`, taken by every command. */
export function nodeDirOption(): Option {
  return new Option('-d, --node-directory <dir>', 'node directory').default(DEFAULT_NODE_DIR, '~/.nightjar');
}
