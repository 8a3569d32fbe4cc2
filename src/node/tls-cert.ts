/**
 * The storage service's self-signed TLS certificate. Peers do not trust it through a CA:
 * they pin its SHA-256 fingerprint (`ALIAS.fingerprint`, printed by `nightjar add-client`),
 * so the certificate only has to be well-formed and stable.
 *
 * Node can sign but has no X.509 writer, so this module encodes the one certificate shape
 * it needs in DER itself (an ECDSA P-256 key, v3, CN only, no expiry) and signs it with
 * node:crypto. That keeps `openssl` (absent on Windows, LibreSSL with other flags on macOS)
 * and an npm dependency out of node creation; the result is checked with X509Certificate.
 */
import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { constants as fsConstants, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { NodeDirLayout } from './node-dir.js';

/** Where the storage service's key and certificate live, and the certificate's fingerprint. */
export interface StorageCertificate {
  /** `private/storage.key`, PKCS#8 PEM, mode 0600. */
  readonly keyFile: string;
  /** `private/storage.crt`, PEM, mode 0600. */
  readonly certFile: string;
  readonly keyPem: string;
  readonly certPem: string;
  /** SHA-256 of the DER certificate: lowercase hex pairs joined by colons. */
  readonly fingerprint: string;
  /** True when this call made the certificate. */
  readonly created: boolean;
}

export function storageCertificateFiles(layout: NodeDirLayout): { keyFile: string; certFile: string } {
  return { keyFile: join(layout.privateDir, 'storage.key'), certFile: join(layout.privateDir, 'storage.crt') };
}

/**
 * Returns the node's storage certificate, creating key and certificate once (mode 0600)
 * when they do not exist. Idempotent and safe against a concurrent call in another
 * process (`nightjar add-client` while `nightjar start` runs): the key is published with
 * link(2), which fails rather than overwrites, and the loser reads the winner's files.
 * Never replaces an existing certificate: peers have pinned its fingerprint.
 */
export async function ensureStorageCertificate(layout: NodeDirLayout): Promise<StorageCertificate> {
  const { keyFile, certFile } = storageCertificateFiles(layout);
  const existing = await readPair(keyFile, certFile);
  if (existing) return { keyFile, certFile, ...existing, created: false };

  await fsp.mkdir(layout.privateDir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const keyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const certPem = toPem('CERTIFICATE', selfSignedCertificate(privateKey, publicKey, 'nightjar storage'));
  const tag = randomBytes(6).toString('hex');
  const tmpKey = `${keyFile}.tmp-${tag}`;
  const tmpCert = `${certFile}.tmp-${tag}`;
  try {
    await writePrivate(tmpKey, keyPem);
    await writePrivate(tmpCert, certPem);
    // The certificate goes first: whoever sees the key can then rely on the certificate.
    try {
      await fsp.link(tmpCert, certFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      return { keyFile, certFile, ...(await waitForPair(keyFile, certFile)), created: false };
    }
    await fsp.link(tmpKey, keyFile);
  } finally {
    await fsp.unlink(tmpKey).catch(() => {});
    await fsp.unlink(tmpCert).catch(() => {});
  }
  return { keyFile, certFile, keyPem, certPem, fingerprint: certificateFingerprint(certPem), created: true };
}

/** The storage certificate, or null when the node has none yet. Throws on unreadable files. */
export async function readStorageCertificate(layout: NodeDirLayout): Promise<Omit<StorageCertificate, 'created'> | null> {
  const { keyFile, certFile } = storageCertificateFiles(layout);
  const pair = await readPair(keyFile, certFile);
  return pair ? { keyFile, certFile, ...pair } : null;
}

/** SHA-256 fingerprint of a PEM or DER certificate, as `ab:cd:…` (lowercase, colons). */
export function certificateFingerprint(cert: string | Buffer): string {
  const der = typeof cert === 'string' ? new X509Certificate(cert).raw : cert;
  return formatFingerprint(createHash('sha256').update(der).digest('hex'));
}

/** `ABCD…`, `ab:cd:…` → `ab:cd:…`. Throws unless it is 32 bytes of hex. */
export function formatFingerprint(fingerprint: string): string {
  const hex = normalizeFingerprint(fingerprint);
  return hex.match(/../g)!.join(':');
}

/** `AB:CD:…` or `abcd…` → 64 lowercase hex digits without colons. Throws on anything else. */
export function normalizeFingerprint(fingerprint: string): string {
  const hex = fingerprint.trim().replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`not a SHA-256 fingerprint: ${JSON.stringify(fingerprint)}`);
  return hex;
}

async function readPair(keyFile: string, certFile: string): Promise<{ keyPem: string; certPem: string; fingerprint: string } | null> {
  let keyPem: string;
  let certPem: string;
  try {
    [keyPem, certPem] = await Promise.all([fsp.readFile(keyFile, 'utf8'), fsp.readFile(certFile, 'utf8')]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return { keyPem, certPem, fingerprint: certificateFingerprint(certPem) };
}

async function waitForPair(keyFile: string, certFile: string): Promise<{ keyPem: string; certPem: string; fingerprint: string }> {
  // The winner links the key right after the certificate; give it a moment.
  for (let i = 0; i < 50; i++) {
    const pair = await readPair(keyFile, certFile);
    if (pair) return pair;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${certFile} exists but ${keyFile} does not: remove both to make a new certificate (peers must then re-pin it)`);
}

async function writePrivate(file: string, text: string): Promise<void> {
  const fh = await fsp.open(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

function toPem(label: string, der: Buffer): string {
  const b64 = der.toString('base64').match(/.{1,64}/g)!.join('\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

// --- a minimal DER writer for one certificate shape (RFC 5280) ---

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

const seq = (...items: Buffer[]) => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]) => tlv(0x31, Buffer.concat(items));

function oid(dotted: string): Buffer {
  const parts = dotted.split('.').map(Number);
  const out = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const chunk = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) chunk.unshift(0x80 | (v & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

function positiveInteger(bytes: Buffer): Buffer {
  let b = bytes;
  while (b.length > 1 && b[0] === 0) b = b.subarray(1);
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}

const ECDSA_WITH_SHA256 = '1.2.840.10045.4.3.2';
const COMMON_NAME = '2.5.4.3';
const BASIC_CONSTRAINTS = '2.5.29.19';

function selfSignedCertificate(privateKey: KeyObject, publicKey: KeyObject, commonName: string): Buffer {
  const name = seq(set(seq(oid(COMMON_NAME), tlv(0x0c, Buffer.from(commonName, 'utf8')))));
  const algorithm = seq(oid(ECDSA_WITH_SHA256));
  // No wall-clock reading needed: the certificate is pinned, not CA-validated, so it is
  // valid from 2000 and, per RFC 5280 §4.1.2.5, "no well-defined expiration" (9999).
  const validity = seq(tlv(0x17, Buffer.from('000101000000Z')), tlv(0x18, Buffer.from('99991231235959Z')));
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  // basicConstraints, critical, cA = FALSE (the empty SEQUENCE).
  const extensions = tlv(0xa3, seq(seq(oid(BASIC_CONSTRAINTS), tlv(0x01, Buffer.from([0xff])), tlv(0x04, seq()))));
  const tbs = seq(
    tlv(0xa0, positiveInteger(Buffer.from([2]))), // v3
    positiveInteger(randomBytes(16)),
    algorithm,
    name,
    validity,
    name,
    spki,
    extensions,
  );
  const signature = sign('sha256', tbs, privateKey); // DER-encoded ECDSA signature
  return seq(tbs, algorithm, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
}
