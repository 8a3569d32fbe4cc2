import { hostname } from 'node:os';
import type { Command } from 'commander';
import { CliExit, EXIT, type CliEnv } from '../cli-env.js';
import { NAME_PATTERN } from '../config/keys.js';
import type { NodeConfig } from '../config/types.js';
import { formatBytes, parseSize } from '../config/units.js';
import { nodeDirLayout } from '../node-dir.js';
import { nodeDirOption } from './options.js';

interface AddClientOptions {
  nodeDirectory: string;
  quota?: string;
  deleteToken?: boolean;
  replace?: boolean;
  alias?: string;
  host?: string;
  json?: boolean;
}

/**
 * `nightjar add-client NAME [--quota SIZE] [--delete-token] [--replace] [--alias A]
 * [--host H] [--json] [-d DIR]`: lets peer NAME store backups on this node. Creates the
 * client's token (kept here only as a SHA-256 hash) and the storage certificate if the node
 * has none, then prints the exact `[targets]` lines for the peer's node.cfg and the token
 * to save there (`--json`: `{"target", "token", "fingerprint", …}`). The token is shown
 * only this once. Exit 1 when the client exists (without --replace), 2 on a usage or
 * config error.
 */
export function registerAddClient(program: Command, env: CliEnv): void {
  program
    .command('add-client')
    .description("let a peer store its (encrypted) backups on this node's storage service; prints the lines the peer pastes into its node.cfg")
    .argument('<name>', 'client name: letters, digits, _ and -')
    .addOption(nodeDirOption())
    .option('--quota <size>', 'most the client may store, e.g. 500GiB ([clients] NAME.quota in node.cfg overrides it)')
    .option('--delete-token', 'also make a delete token, for pruning this append-only client')
    .option('--replace', 'issue new tokens for an existing client (its old tokens stop working; its data stays)')
    .option('--alias <alias>', 'the name the peer gives this node in its [targets] (default: this node\'s nickname)')
    .option('--host <host>', 'host name or address the peer reaches this node by (default: [storage] listen, or this machine\'s name)')
    .option('--json', 'print {"target", "token", "fingerprint", …} as JSON')
    .action(async (name: string, opts: AddClientOptions) => {
      const layout = nodeDirLayout(opts.nodeDirectory);
      if (!NAME_PATTERN.test(name)) {
        throw new CliExit(EXIT.usage, `invalid client name ${JSON.stringify(name)}: use 1-64 letters, digits, _ and -, starting with a letter or digit`);
      }
      let quota: number | null | undefined; // undefined: none for a new client, kept with --replace
      if (opts.quota !== undefined) {
        try {
          quota = /^none$/i.test(opts.quota.trim()) ? null : parseSize(opts.quota);
        } catch (err) {
          throw new CliExit(EXIT.usage, `--quota ${opts.quota}: ${(err as Error).message}`);
        }
      }
      const [{ ConfigError, formatProblem, loadConfig }, { ClientExistsError, createClient }, { ensureStorageCertificate }] = await Promise.all([
        import('../config/config.js'),
        import('../../server/client-registry.js'),
        import('../tls-cert.js'),
      ]);
      let config: NodeConfig;
      try {
        config = await loadConfig(layout.configFile, layout.root);
      } catch (err) {
        if (err instanceof ConfigError) throw new CliExit(EXIT.usage, err.problems.map(formatProblem).join('\n'));
        throw err;
      }
      const alias = opts.alias ?? defaultAlias(config.node.nickname);
      if (!NAME_PATTERN.test(alias)) {
        throw new CliExit(EXIT.usage, `--alias ${JSON.stringify(alias)}: use 1-64 letters, digits, _ and -, starting with a letter or digit`);
      }
      const storage = config.storage;
      const host = opts.host ?? (storage.listen === '0.0.0.0' || storage.listen === '::' ? hostname() : storage.listen);
      const urlHost = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
      const target = `node:${storage.plainHttp ? 'http' : 'https'}://${urlHost}:${storage.port}`;
      const fingerprint = storage.plainHttp ? null : (await ensureStorageCertificate(layout)).fingerprint;

      let created;
      try {
        created = await createClient(layout, name, {
          ...(quota !== undefined ? { quota } : {}),
          deleteToken: opts.deleteToken === true,
          replace: opts.replace === true,
          createdAt: env.clock.now().toISOString(),
        });
      } catch (err) {
        if (err instanceof ClientExistsError) throw new CliExit(EXIT.failure, err.message);
        throw err;
      }
      const fromConfig = config.clients[name];
      const effectiveQuota = fromConfig?.quota ?? created.record.quota;
      const appendOnly = fromConfig ? fromConfig.appendOnly : created.record.appendOnly;

      if (opts.json) {
        env.stdout.write(
          JSON.stringify({
            target,
            token: created.token,
            fingerprint,
            alias,
            client: name,
            delete_token: created.deleteToken,
            append_only: appendOnly,
            quota: effectiveQuota,
          }) + '\n',
        );
        return;
      }
      const lines = [
        `${alias} = ${target}`,
        `${alias}.token_file = private/${alias}.token`,
        ...(fingerprint ? [`${alias}.fingerprint = ${fingerprint}`] : [`${alias}.plain_http = true`]),
      ];
      const out = [
        `${opts.replace ? 're-issued tokens for' : 'added'} client "${name}" (${appendOnly ? 'append-only' : 'may delete'}, ${effectiveQuota === null ? 'no quota' : `quota ${formatBytes(effectiveQuota)}`})`,
        '',
        `On ${name}'s node, add these lines to the [targets] section of node.cfg:`,
        '',
        ...lines.map((l) => `    ${l}`),
        '',
        `and save this token, alone on one line, in the file private/${alias}.token of ${name}'s node directory (mode 0600):`,
        '',
        `    ${created.token}`,
        '',
        'The token is shown only now; this node keeps just its hash. Lost it? Run add-client again with --replace.',
      ];
      if (created.deleteToken) {
        out.push(
          '',
          "Delete token (may also delete objects, for pruning; keep it away from the client's node so a compromised client cannot destroy its history):",
          '',
          `    ${created.deleteToken}`,
        );
      }
      if (!storage.enabled) out.push('', `Note: [storage] enabled is false in ${layout.configFile}; set it to true and restart the node.`);
      if (storage.port === 0) out.push('', 'Note: [storage] port is 0 (a random port); set a fixed port so peers can find the service.');
      env.stdout.write(out.join('\n') + '\n');
    });
}

/** The node's nickname as a target alias: `Mum's PC` → `Mum-s-PC`. */
function defaultAlias(nickname: string): string {
  const alias = nickname.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^[-_]+|-+$/g, '').slice(0, 64);
  return NAME_PATTERN.test(alias) ? alias : 'peer';
}
