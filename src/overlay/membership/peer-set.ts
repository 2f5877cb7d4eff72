/**
 * From what etcd holds under the deployment to the peers the global device
 * should have. A node record becomes a peer only when its slice is inside the
 * cluster and the slice's own record names that node and key: a node cannot
 * route someone else's slice to itself by writing a record. Bad records are
 * reported (with the reason) and skipped; the rest still apply. A node's
 * isolation members count only at addresses of its own slice and service
 * subnets: a record cannot get another node's containers fenced.
 */
import { parseCidr, type Cidr } from '../../device/index.js';
import { DEFAULT_PERSISTENT_KEEPALIVE_SECS, ROAMING_ENDPOINT } from '../constants.js';
import { peerSpecToInfo } from '../peer-spec.js';
import { parsePeerSpec, type PeerSpec } from '../protocol.js';
import type { KeyValue } from './etcd-client.js';
import {
  cidrInside,
  cidrsOverlap,
  parseNodeRecord,
  parseSliceRecord,
  RecordError,
  type IsolationMembers,
  type KeyLayout,
  type NodeRecord,
  type SliceRecord,
} from './records.js';
import { errorMessage } from '../../platform/index.js';

export interface MemberPeer {
  nodeId: string;
  spec: PeerSpec;
  /** Isolation network → that node's members' addresses. */
  isolation: IsolationMembers;
}

export interface PeerSetContext {
  layout: KeyLayout;
  cluster: Cidr;
  selfNodeId: string;
  selfPublicKey: string;
}

/** A record that was skipped: its key, the revision it was written at, and why. */
export type SkipReport = (key: string, modRevision: number, reason: string) => void;

/** nodeId → the peer to program, for every acceptable node record but our own. */
export function desiredPeers(kvs: Iterable<KeyValue>, context: PeerSetContext, skip: SkipReport): Map<string, MemberPeer> {
  const { layout } = context;
  const slices = new Map<string, SliceRecord>();
  const nodes: Array<{ kv: KeyValue; nodeId: string }> = [];
  for (const kv of kvs) {
    if (kv.key.startsWith(layout.slices)) {
      try {
        slices.set(kv.key.slice(layout.slices.length), parseSliceRecord(kv.value, kv.key));
      } catch (error) {
        skip(kv.key, kv.modRevision, errorMessage(error));
      }
    } else if (kv.key.startsWith(layout.nodes)) {
      nodes.push({ kv, nodeId: kv.key.slice(layout.nodes.length) });
    }
  }
  nodes.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));

  const accepted: Array<{ nodeId: string; kv: KeyValue; record: NodeRecord; slice: Cidr }> = [];
  const keys = new Map<string, string>();
  for (const { kv, nodeId } of nodes) {
    if (nodeId === context.selfNodeId) continue;
    try {
      const record = parseNodeRecord(kv.value, kv.key);
      const slice = parseCidr(record.slice);
      if (!cidrInside(context.cluster, slice)) throw new RecordError(`${kv.key}: slice ${record.slice} is outside the cluster`);
      const owner = slices.get(record.slice);
      if (owner === undefined) throw new RecordError(`${kv.key}: slice ${record.slice} has no reservation`);
      if (owner.nodeId !== nodeId || owner.publicKey !== record.publicKey) {
        throw new RecordError(`${kv.key}: slice ${record.slice} is reserved for node ${owner.nodeId}, not this one`);
      }
      if (record.publicKey === context.selfPublicKey) throw new RecordError(`${kv.key}: has this node's own public key`);
      const earlier = keys.get(record.publicKey);
      if (earlier !== undefined) throw new RecordError(`${kv.key}: same public key as node ${earlier}`);
      keys.set(record.publicKey, nodeId);
      accepted.push({ nodeId, kv, record, slice });
    } catch (error) {
      skip(kv.key, kv.modRevision, errorMessage(error));
    }
  }

  const peers = new Map<string, MemberPeer>();
  for (const { nodeId, kv, record, slice } of accepted) {
    try {
      // Subnet by slice (not node by node): most records have no subnets, and a thousand nodes would make a million checks.
      const subnets = record.serviceSubnets.map((text) => parseCidr(text));
      subnets.forEach((subnet, index) => {
        const other = accepted.find((candidate) => candidate.nodeId !== nodeId && cidrsOverlap(subnet, candidate.slice));
        if (other !== undefined) throw new RecordError(`${kv.key}: service subnet ${record.serviceSubnets[index]} overlaps node ${other.nodeId}'s slice`);
      });
      const spec = parsePeerSpec(
        {
          publicKey: record.publicKey,
          endpoint: record.endpoint ?? ROAMING_ENDPOINT,
          allowedIps: [record.slice, ...record.serviceSubnets.filter((s) => !cidrsOverlap(parseCidr(s), slice))].join(','),
          persistentKeepaliveSecs: DEFAULT_PERSISTENT_KEEPALIVE_SECS,
          candidates: record.candidates,
        },
        kv.key,
      );
      peerSpecToInfo(spec);
      peers.set(nodeId, { nodeId, spec, isolation: ownedIsolation(record, [slice, ...subnets], (text) => skip(kv.key, kv.modRevision, text)) });
    } catch (error) {
      skip(kv.key, kv.modRevision, errorMessage(error));
    }
  }
  return peers;
}

/** The record's isolation members at addresses inside `owned`; the others are reported and left out. */
function ownedIsolation(record: NodeRecord, owned: Cidr[], report: (reason: string) => void): IsolationMembers {
  const out: IsolationMembers = {};
  for (const [network, ips] of Object.entries(record.isolation)) {
    const kept = ips.filter((ip) => {
      const address = parseCidr(ip.includes(':') ? `${ip}/128` : `${ip}/32`);
      if (owned.some((cidr) => cidrInside(cidr, address))) return true;
      report(`isolation member ${ip} of ${network} is outside the node's slice and service subnets; left out`);
      return false;
    });
    if (kept.length > 0) out[network] = kept;
  }
  return out;
}

/** Whether two specs program the device the same way. */
export function sameSpec(a: PeerSpec, b: PeerSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
