/**
 * Malformed control lines for the overlay node's control socket tests: a
 * fixed set of hand-written bad requests (each with the field its Err must
 * name) plus seeded random mutations of valid requests. None contains a
 * newline, so each is exactly one line on the wire.
 */
import { Rng } from './fuzz.js';

export interface MalformedCase {
  line: string;
  /** A piece of text the Err message must contain (the field, or the kind of problem). */
  mentions: string;
}

const KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

export const MALFORMED_CASES: readonly MalformedCase[] = [
  { line: 'not json', mentions: 'not a JSON object' },
  { line: '[1,2,3]', mentions: 'not a JSON object' },
  { line: '"Status"', mentions: 'not a JSON object' },
  { line: 'null', mentions: 'not a JSON object' },
  { line: '{}', mentions: 'type' },
  { line: '{"type":42}', mentions: 'type' },
  { line: '{"type":"Frobnicate"}', mentions: 'Frobnicate' },
  { line: '{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.200.0.0/16","wgPort":"x"}', mentions: 'SetupGlobalOverlay.wgPort' },
  { line: '{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"10.200.0.0/16","wgPort":70000}', mentions: 'SetupGlobalOverlay.wgPort' },
  { line: '{"type":"SetupGlobalOverlay","deployment":"d","instanceId":"i","clusterCidr":"banana"}', mentions: 'SetupGlobalOverlay.clusterCidr' },
  { line: '{"type":"SetupGlobalOverlay","instanceId":"i","clusterCidr":"10.200.0.0/16"}', mentions: 'SetupGlobalOverlay.deployment' },
  { line: '{"type":"AllocateIp","service":5}', mentions: 'AllocateIp.service' },
  { line: '{"type":"ReleaseIp","ip":"300.1.1.1"}', mentions: 'ReleaseIp.ip' },
  { line: '{"type":"AddPeer","peer":null}', mentions: 'AddPeer.peer' },
  { line: `{"type":"AddPeer","peer":{"publicKey":"short"}}`, mentions: 'AddPeer.peer.publicKey' },
  { line: `{"type":"AddPeer","peer":{"publicKey":"${KEY}","persistentKeepaliveSecs":-1}}`, mentions: 'AddPeer.peer.persistentKeepaliveSecs' },
  { line: `{"type":"AddPeer","peer":{"publicKey":"${KEY}","candidates":"x"}}`, mentions: 'AddPeer.peer.candidates' },
  { line: `{"type":"AddPeer","peer":{"publicKey":"${KEY}"},"scope":7}`, mentions: 'AddPeer.scope' },
  { line: `{"type":"RemovePeer","pubkey":true}`, mentions: 'RemovePeer.pubkey' },
  { line: `{"type":"AddAllowedIp","pubkey":"${KEY}","cidr":"10.0.0.0/99"}`, mentions: 'AddAllowedIp.cidr' },
  { line: `{"type":"RemoveAllowedIp","pubkey":"${KEY}"}`, mentions: 'RemoveAllowedIp.cidr' },
  { line: '{"type":"SetLocalNodeId","nodeId":"seven"}', mentions: 'SetLocalNodeId.nodeId' },
  { line: '{"type":"Status","extra":1}', mentions: 'extra' },
  { line: '{"type":"Status"', mentions: 'not a JSON object' },
];

const VALID = [
  '{"type":"Status"}',
  '{"type":"AllocateIp","service":"web","joinGlobal":false}',
  `{"type":"AddPeer","peer":{"publicKey":"${KEY}","endpoint":"192.0.2.1:51820","allowedIps":"10.200.9.0/26","persistentKeepaliveSecs":25,"candidates":[]},"scope":"global"}`,
  '{"type":"ReleaseIp","ip":"10.200.0.7"}',
];

/**
 * A random mutation of a valid request (never of SetupGlobalOverlay, so even a
 * mutation that stays valid changes nothing on the host): bytes flipped, cut, duplicated; printable, never a newline. */
export function randomMalformedLine(rng: Rng): string {
  const chars = [...VALID[rng.int(VALID.length)]!];
  const ops = rng.range(1, 4);
  for (let i = 0; i < ops; i++) {
    const at = rng.int(chars.length);
    switch (rng.int(4)) {
      case 0:
        chars.splice(at, rng.range(1, 8));
        break;
      case 1:
        chars.splice(at, 0, String.fromCharCode(rng.range(0x20, 0x7e)));
        break;
      case 2:
        chars[at] = String.fromCharCode(rng.range(0x20, 0x7e));
        break;
      default:
        chars.splice(at, 0, ...chars.slice(at, at + rng.range(1, 10)));
    }
  }
  return chars.join('').replace(/[\r\n]/g, ' ');
}
