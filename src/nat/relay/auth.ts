/**
 * The relay's shared key and the tags made with it. Server and clients
 * derive the same key from the cluster credential (seed: derive_auth_key,
 * BLAKE2b): BLAKE2b-256 of the credential's UTF-8 bytes with the 16-byte
 * personalisation "tswg-relay-auth1". The empty credential is allowed: nodes
 * without a credential then interoperate only with each other.
 */
import { blake2b } from '@noble/hashes/blake2.js';
import { constantTimeEqual } from '../../noise/bytes.js';
import { AUTH_KEY_PERSONALIZATION, AUTH_KEY_SIZE, TAG_SIZE } from './constants.js';

const personalization = new TextEncoder().encode(AUTH_KEY_PERSONALIZATION);

export function deriveRelayAuthKey(credential: string): Uint8Array {
  return blake2b(new TextEncoder().encode(credential), { dkLen: AUTH_KEY_SIZE, personalization });
}

/** Keyed BLAKE2b-256 of `data`: the tag of REGISTER and REGISTERED. */
export function relayTag(authKey: Uint8Array, data: Uint8Array): Uint8Array {
  return blake2b(data, { key: authKey, dkLen: TAG_SIZE });
}

export function relayTagValid(authKey: Uint8Array, data: Uint8Array, tag: Uint8Array): boolean {
  return constantTimeEqual(relayTag(authKey, data), tag);
}
