/**
 * A peer as the control plane sends it (PeerSpec: strings) → what the device
 * needs (PeerInfo: key bytes, a parsed endpoint, CIDRs, NAT candidates).
 * The error wording is the one the control plane knows:
 *   "invalid peer endpoint {e}: …", "invalid CIDR {c}: …".
 * "0.0.0.0:0" (or "[::]:0", or "") means no endpoint yet: the peer roams in.
 * Candidates of unknown type or with a bad address are dropped, not refused
 * (they come from other nodes' gathering, which this node cannot vouch for).
 */
import { AddressError, formatCidr, parseCidr, parseEndpoint, type Cidr, type Endpoint, type UapiPeerChange } from '../device/index.js';
import { candidatesFromWire, type Candidate } from '../nat/index.js';
import { decodeKey } from '../noise/index.js';
import { MAX_KEEPALIVE_SECS } from './constants.js';
import { OverlayError } from './errors.js';
import type { PeerSpec } from './protocol.js';
import { errorMessage } from '../platform/index.js';

export type { PeerSpec } from './protocol.js';


export interface PeerInfo {
  publicKey: Uint8Array;
  publicKeyBase64: string;
  /** null: no endpoint yet (roaming; the peer's first handshake sets it). */
  endpoint: Endpoint | null;
  allowedIps: Cidr[];
  /** The spec's allowedIps string, verbatim, so Status reports what was sent. */
  allowedIpsText: string;
  /** 0 = off. */
  persistentKeepaliveSecs: number;
  candidates: Candidate[];
}

/** The endpoint of a spec, null for the roaming sentinel; OverlayError "invalid peer endpoint …" otherwise. */
export function parsePeerEndpoint(text: string): Endpoint | null {
  if (text.trim() === '') return null;
  let endpoint: Endpoint;
  try {
    endpoint = parseEndpoint(text.trim());
  } catch (error) {
    if (error instanceof AddressError) throw new OverlayError(`invalid peer endpoint ${text}: ${error.message}`);
    throw error;
  }
  const unspecified = endpoint.address === '0.0.0.0' || endpoint.address === '::';
  if (unspecified && endpoint.port === 0) return null;
  if (unspecified) throw new OverlayError(`invalid peer endpoint ${text}: the unspecified address is not reachable (use 0.0.0.0:0 for "no endpoint yet")`);
  if (endpoint.port === 0) throw new OverlayError(`invalid peer endpoint ${text}: port 0 is not reachable`);
  return endpoint;
}

/** A comma-separated CIDR list ("" = none; spaces around entries allowed); OverlayError "invalid CIDR …". */
export function parseAllowedIps(text: string): Cidr[] {
  const out: Cidr[] = [];
  for (const entry of text.split(',')) {
    const trimmed = entry.trim();
    if (trimmed === '') continue;
    try {
      out.push(parseCidr(trimmed));
    } catch (error) {
      if (error instanceof AddressError) throw new OverlayError(`invalid CIDR ${trimmed}: ${error.message}`);
      throw error;
    }
  }
  return out;
}

/** Convert a PeerSpec; throws OverlayError naming the bad key, endpoint or CIDR. The endpoint is checked first, so a bad one is always the error named. */
export function peerSpecToInfo(spec: PeerSpec): PeerInfo {
  const endpoint = parsePeerEndpoint(spec.endpoint);
  let publicKey: Uint8Array;
  try {
    publicKey = decodeKey(spec.publicKey, 'peer public key');
  } catch (error) {
    throw new OverlayError(`invalid peer public key ${JSON.stringify(spec.publicKey)}: ${errorMessage(error)}`);
  }
  const keepalive = spec.persistentKeepaliveSecs;
  if (!Number.isSafeInteger(keepalive) || keepalive < 0 || keepalive > MAX_KEEPALIVE_SECS) {
    throw new OverlayError(`invalid persistent keepalive ${keepalive}: expected 0..${MAX_KEEPALIVE_SECS} seconds`);
  }
  return {
    publicKey,
    publicKeyBase64: spec.publicKey,
    endpoint,
    allowedIps: parseAllowedIps(spec.allowedIps),
    allowedIpsText: spec.allowedIps,
    persistentKeepaliveSecs: keepalive,
    candidates: candidatesFromWire(spec.candidates),
  };
}

/** The CIDRs of a PeerInfo as text ("10.200.0.5/32"), for logs and status. */
export function allowedIpsToText(allowedIps: readonly Cidr[]): string[] {
  return allowedIps.map(formatCidr);
}

/** A UAPI peer change for `publicKey`: nothing but what `fields` says (not a removal, not update-only, allowed IPs added). */
export function peerChange(publicKey: Uint8Array, fields: Partial<UapiPeerChange>): UapiPeerChange {
  return { publicKey, remove: false, updateOnly: false, replaceAllowedIps: false, allowedIps: [], ...fields };
}
