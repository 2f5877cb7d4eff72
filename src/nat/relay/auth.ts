/**
 * The relay's keys and tags.
 *
 *  - The cluster key: BLAKE2b-256 of the credential's UTF-8 bytes with the
 *    16-byte personalisation "tswg-relay-auth1". It
 *    admits nodes of the cluster and tags HELLO, CHALLENGE, REFUSED and
 *    NOT-REGISTERED. A relay port is open to the world, so the credential must
 *    be a real secret: relayCredentialProblem() refuses short or degenerate ones.
 *  - The key-proof key of one node at one relay process:
 *    BLAKE2b-256(key = cluster key, context | X25519(node static, relay key) |
 *    relay public key | node public key). Only the holder of the node's
 *    WireGuard private key (or of the relay's) can compute it; it tags REGISTER
 *    and REGISTERED, so a REGISTER proves the node key and is worthless at any
 *    other relay process (another relay key, another DH).
 *  - Cookies: keyed BLAKE2b-128 under a per-process secret over the client's
 *    source address and the issue time (stateless until a REGISTER uses one).
 */
import { blake2b } from '@noble/hashes/blake2.js';
import { constantTimeEqual } from '../../noise/index.js';
import {
  AUTH_KEY_PERSONALIZATION,
  AUTH_KEY_SIZE,
  COOKIE_SIZE,
  KEY_PROOF_CONTEXT,
  MIN_CREDENTIAL_BYTES,
  MIN_CREDENTIAL_DISTINCT_BYTES,
  NOT_REGISTERED_CONTEXT,
  SHORT_TAG_SIZE,
  TAG_SIZE,
} from './constants.js';

const encoder = new TextEncoder();
const personalization = encoder.encode(AUTH_KEY_PERSONALIZATION);
const keyProofContext = encoder.encode(KEY_PROOF_CONTEXT);
const notRegisteredContext = encoder.encode(NOT_REGISTERED_CONTEXT);

/** A relay credential too weak to put on a port anyone can reach. */
export class RelayCredentialError extends Error {
  override readonly name = 'RelayCredentialError';
}

/** Why `credential` is too weak for a relay, or null when it will do. */
export function relayCredentialProblem(credential: unknown): string | null {
  if (typeof credential !== 'string' || credential === '') return 'is not set';
  const bytes = encoder.encode(credential);
  if (bytes.length < MIN_CREDENTIAL_BYTES) return `is ${bytes.length} bytes; at least ${MIN_CREDENTIAL_BYTES} random bytes are needed`;
  const distinct = new Set(bytes).size;
  if (distinct < MIN_CREDENTIAL_DISTINCT_BYTES) return `has only ${distinct} distinct bytes; use a random secret (e.g. openssl rand -base64 24)`;
  return null;
}

/** Throw RelayCredentialError naming `option` when the credential is too weak. */
export function requireRelayCredential(credential: unknown, option: string): string {
  const problem = relayCredentialProblem(credential);
  if (problem !== null) throw new RelayCredentialError(`${option} ${problem} (a relay needs a shared secret of at least ${MIN_CREDENTIAL_BYTES} bytes)`);
  return credential as string;
}

export function deriveRelayAuthKey(credential: string): Uint8Array {
  return blake2b(encoder.encode(credential), { dkLen: AUTH_KEY_SIZE, personalization });
}

/** Keyed BLAKE2b-256 of `data`. */
export function relayTag(authKey: Uint8Array, data: Uint8Array): Uint8Array {
  return blake2b(data, { key: authKey, dkLen: TAG_SIZE });
}

export function relayTagValid(authKey: Uint8Array, data: Uint8Array, tag: Uint8Array): boolean {
  return constantTimeEqual(relayTag(authKey, data), tag);
}

/** The key that tags REGISTER and REGISTERED (see the file comment). `sharedSecret` is X25519(node, relay). */
export function keyProofKey(authKey: Uint8Array, sharedSecret: Uint8Array, relayPublicKey: Uint8Array, nodePublicKey: Uint8Array): Uint8Array {
  const data = new Uint8Array(keyProofContext.length + sharedSecret.length + relayPublicKey.length + nodePublicKey.length);
  let at = 0;
  for (const part of [keyProofContext, sharedSecret, relayPublicKey, nodePublicKey]) {
    data.set(part, at);
    at += part.length;
  }
  return blake2b(data, { key: authKey, dkLen: AUTH_KEY_SIZE });
}

/** The NOT-REGISTERED tag over the token it answers (so only the server can tell a client to re-register). */
export function notRegisteredTag(authKey: Uint8Array, token: Uint8Array): Uint8Array {
  const data = new Uint8Array(notRegisteredContext.length + token.length);
  data.set(notRegisteredContext);
  data.set(token, notRegisteredContext.length);
  return blake2b(data, { key: authKey, dkLen: SHORT_TAG_SIZE });
}

/** A cookie for `source` ("ip|port") issued at `issuedMs`. */
export function relayCookie(secret: Uint8Array, source: string, issuedMs: number): Uint8Array {
  return blake2b(encoder.encode(`${source}|${issuedMs}`), { key: secret, dkLen: COOKIE_SIZE });
}
