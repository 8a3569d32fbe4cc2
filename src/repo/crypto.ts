import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes, randomFillSync, scrypt as scryptCb } from 'node:crypto';
import { IntegrityError } from './errors.js';

/** AES-256-GCM nonce length (96 bits, random per message). */
export const NONCE_LEN = 12;
/** GCM tag length. */
export const TAG_LEN = 16;
/** Bytes added by seal(). */
export const SEAL_OVERHEAD = NONCE_LEN + TAG_LEN;

/** The repository's secrets (sealed in every key object). */
export interface MasterKeys {
  /** AES-256-GCM key for every stored byte. */
  encKey: Buffer;
  /** HMAC-SHA-256 key for blob ids. */
  idKey: Buffer;
  /** Seed of the chunker's gear table. */
  chunkerSeed: Buffer;
}

/**
 * Random nonce bytes, drawn from the CSPRNG 4 KiB at a time and never handed out twice:
 * one randomFillSync per nonce cost ~10 µs each, a noticeable share of a backup's time
 * with tens of thousands of small blobs.
 */
const noncePool = Buffer.alloc(4096);
let noncePos = noncePool.length;

function fillNonce(out: Uint8Array, offset: number): void {
  if (noncePos + NONCE_LEN > noncePool.length) {
    randomFillSync(noncePool);
    noncePos = 0;
  }
  out.set(noncePool.subarray(noncePos, noncePos + NONCE_LEN), offset);
  noncePool.fill(0, noncePos, noncePos + NONCE_LEN);
  noncePos += NONCE_LEN;
}

export function generateMasterKeys(): MasterKeys {
  return { encKey: randomBytes(32), idKey: randomBytes(32), chunkerSeed: randomBytes(32) };
}

/**
 * Encrypts with AES-256-GCM: output = nonce(12) ‖ ciphertext ‖ tag(16). `aad` (optional)
 * is authenticated but not stored.
 */
export function seal(key: Buffer, plaintext: Uint8Array, aad?: Buffer): Buffer {
  const nonce = Buffer.allocUnsafe(NONCE_LEN);
  fillNonce(nonce, 0);
  const c = createCipheriv('aes-256-gcm', key, nonce);
  if (aad) c.setAAD(aad);
  const body = c.update(plaintext);
  const fin = c.final();
  const tag = c.getAuthTag();
  return Buffer.concat([nonce, body, fin, tag], NONCE_LEN + body.length + fin.length + TAG_LEN);
}

const sealNonce = Buffer.alloc(NONCE_LEN);

/**
 * seal() written straight into `out` at `offset` (out must have plaintext.length +
 * SEAL_OVERHEAD bytes there); returns the sealed length. Saves seal()'s concatenation.
 * `plaintext` may lie in `out` at `offset` (sealing in place): it is read in full before
 * anything is written.
 */
export function sealInto(key: Buffer, plaintext: Uint8Array, out: Uint8Array, offset: number): number {
  fillNonce(sealNonce, 0);
  const c = createCipheriv('aes-256-gcm', key, sealNonce);
  const body = c.update(plaintext);
  out.set(sealNonce, offset);
  out.set(body, offset + NONCE_LEN);
  const fin = c.final();
  if (fin.length) out.set(fin, offset + NONCE_LEN + body.length);
  out.set(c.getAuthTag(), offset + NONCE_LEN + body.length + fin.length);
  return NONCE_LEN + body.length + fin.length + TAG_LEN;
}

/** Decrypts seal()'s output; throws IntegrityError naming `what` when authentication fails. */
export function open(key: Buffer, sealed: Uint8Array, what: string, aad?: Buffer): Buffer {
  if (sealed.length < SEAL_OVERHEAD) throw new IntegrityError(`${what} (too short)`);
  const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const d = createDecipheriv('aes-256-gcm', key, buf.subarray(0, NONCE_LEN));
  if (aad) d.setAAD(aad);
  d.setAuthTag(buf.subarray(buf.length - TAG_LEN));
  const body = d.update(buf.subarray(NONCE_LEN, buf.length - TAG_LEN));
  try {
    const fin = d.final();
    return fin.length ? Buffer.concat([body, fin]) : body;
  } catch {
    throw new IntegrityError(what);
  }
}

/** Blob id: HMAC-SHA-256(idKey, plaintext) as lowercase hex. */
export function blobId(idKey: Buffer, plaintext: Uint8Array): string {
  return createHmac('sha256', idKey).update(plaintext).digest('hex');
}

/** Plain SHA-256 hex (names of packs and index objects: hashes of ciphertext). */
export function sha256Hex(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** scrypt parameters of a key object. */
export interface KdfParams {
  N: number;
  r: number;
  p: number;
}

/**
 * Default for new key objects: N=2^15, r=8, p=1 — 32 MiB of memory and ~0.12 s per
 * attempt here (FORMAT.md "Key objects" says why not more). Every key object records its
 * own parameters, so keys made with other settings (older N=2^17 keys) still open.
 */
export const DEFAULT_KDF: KdfParams = { N: 2 ** 15, r: 8, p: 1 };

/** Derives a 32-byte key from a passphrase with scrypt. */
export function deriveKey(passphrase: string, salt: Buffer, params: KdfParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scryptCb(
      Buffer.from(passphrase.normalize('NFC'), 'utf8'),
      salt,
      32,
      { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r + 64 * 1024 * 1024 },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}
