/**
 * Where a node's slice and peers come from. Two backends:
 *   static — the config file and the control API (the default: no `membership` in the config);
 *   etcd   — slices allocated and peers discovered through an etcd cluster.
 * The daemon asks the backend for its slice (start), sets up the global
 * overlay with it, then hands it a sink for peer changes (onPeers) and keeps
 * its own record up to date (publish). stop(revoke) ends it; revoke = true
 * takes the node out of its peers' view at once (SIGTERM, Shutdown).
 */
import type { CandidateWire, MembershipStatusView, PeerSpec } from '../protocol.js';

export type { MembershipStatusView } from '../protocol.js';

/** Who this node is, as the backend needs it. */
export interface NodeInfo {
  deployment: string;
  /** The node's instance id: its identity in etcd. */
  nodeId: string;
  /** Base64 public key of the global device. */
  publicKey: string;
  clusterCidr: string;
  /** A slice fixed by the config: honoured (and checked) instead of allocating one. */
  sliceCidr?: string;
  wgPort: number;
}

/** What this node advertises about itself besides its key and slice. */
export interface LocalRecord {
  /** "ip:port" other nodes send to; null = roaming (they wait for this node's handshake). */
  endpoint: string | null;
  candidates: CandidateWire[];
  /** Subnets of this node's service overlays: other nodes route them to this node too. */
  serviceSubnets: string[];
  /** Isolation network → this node's members' addresses: other nodes fence them too. */
  isolation?: Record<string, string[]>;
}

/** Applies peer changes to the global device (the daemon sends them through its control queue). */
export interface PeerSink {
  /** Add the peer, or replace its endpoint and allowed IPs. */
  add(nodeId: string, peer: PeerSpec): Promise<void>;
  remove(nodeId: string, publicKey: string): Promise<void>;
  /** The isolation members that node hosts now (replacing the last list; {} when none). */
  isolation?(nodeId: string, publicKey: string, networks: Record<string, string[]>): Promise<void>;
}

export interface Membership {
  /** Join: returns the slice to set the global overlay up with (undefined: the engine's default). */
  start(node: NodeInfo): Promise<string | undefined>;
  /** Advertise this node's record; a record equal to the last published one writes nothing. */
  publish(record: LocalRecord): Promise<void>;
  /** Deliver the current peers to `sink` (resolves once delivered), then every later change. */
  onPeers(sink: PeerSink): Promise<void>;
  status(): MembershipStatusView;
  /** Stop watching and renewing; `revoke` also withdraws this node's record now. */
  stop(revoke: boolean): Promise<void>;
}
