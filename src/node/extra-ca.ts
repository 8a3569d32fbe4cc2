/**
 * NODE_EXTRA_CA_CERTS, loaded when a TLS connection needs it rather than at start.
 *
 * Node reads and parses that file, and builds its whole root store, while it boots:
 * ~50 ms and ~2 MiB per process on these machines, paid by every `nightjar` command
 * although most never open a TLS connection (a backup to a local repository, `status`).
 * So the launcher (bin/nightjar.js) moves the variable to NIGHTJAR_EXTRA_CA_CERTS before
 * it starts node, and `takeDeferredExtraCa` puts it back for child processes (hooks);
 * this process's TLS clients (S3, peer nodes without a pinned fingerprint) then trust
 * node's bundled roots plus that file's certificates, as node itself would have.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Where the launcher leaves NODE_EXTRA_CA_CERTS for this process. */
export const DEFERRED_EXTRA_CA_ENV = 'NIGHTJAR_EXTRA_CA_CERTS';

let deferredFile: string | null = null;
/** The trust option once built; undefined until the first TLS client asks. */
let trust: { ca?: string[] } | undefined;

/**
 * Takes NIGHTJAR_EXTRA_CA_CERTS (set by the launcher) out of `env`, puts it back as
 * NODE_EXTRA_CA_CERTS for child processes, and remembers the file for `tlsTrust`.
 * Call once, first thing.
 */
export function takeDeferredExtraCa(env: NodeJS.ProcessEnv = process.env): void {
  const file = env[DEFERRED_EXTRA_CA_ENV];
  if (file === undefined) return;
  delete env[DEFERRED_EXTRA_CA_ENV];
  if (file === '') return;
  env.NODE_EXTRA_CA_CERTS = file;
  deferredFile = file;
  trust = undefined;
}

/**
 * TLS options for a client that verifies servers against CAs: `{}` (node's default roots)
 * unless an extra CA file was deferred, then `ca`: node's bundled roots and the file's
 * certificates. A file that cannot be read or holds a bad certificate is ignored with a
 * warning, as node does with NODE_EXTRA_CA_CERTS (loaded once, on the first call).
 */
export function tlsTrust(): { ca?: string[] } {
  if (deferredFile === null) return {};
  trust ??= loadTrust(deferredFile);
  return trust;
}

function loadTrust(file: string): { ca?: string[] } {
  try {
    const pems = readFileSync(file, 'latin1').match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
    if (pems.length === 0) throw new Error('no PEM certificate in it');
    for (const pem of pems) new X509Certificate(pem); // throws on a bad one
    // node:tls only now: loading it costs a backup that never connects ~2 ms.
    return { ca: [...process.getBuiltinModule('node:tls').rootCertificates, ...pems] };
  } catch (err) {
    process.emitWarning(`Ignoring extra certs from \`${file}\`, load failed: ${err instanceof Error ? err.message : String(err)}`);
    return {};
  }
}
