/**
 * The node firewall's shared types: what the rules are built from, the
 * backend interface each firewall tool implements, and what Status shows.
 *
 * A backend owns the node's own rules in one tool (its table or chains and
 * the jumps into the host's base chains); it applies the whole set at once,
 * reads back what the kernel holds (for drift checks) and removes
 * everything it made, treating "does not exist" as done.
 */
import type { RulePlan } from './rules.js';

export type BackendName = 'nftables' | 'iptables-nft' | 'iptables-legacy';

/** What the node's state says the rules must express. */
export interface FirewallInput {
  /** The cluster CIDR ("10.200.0.0/16"): container and node addresses. */
  clusterCidr: string;
  /** The node's own overlay address (DNS listens there). */
  nodeIp: string;
  /** UDP ports of the global device and the dedicated devices' band, inclusive. */
  wgPorts: { first: number; last: number };
  /** Containers in an isolation network (on this node and on others), every address they have. */
  members: ReadonlyArray<{ ip: string; network: string }>;
  /**
   * Whether anything may need masquerading (a container is attached). Until
   * then the iptables backends leave the nat table alone: iptables-legacy
   * creates a table on first use and the kernel never drops it again. (Our
   * own nft table goes whole on revert, so it always has its nat chain.)
   */
  masquerade: boolean;
}

export interface FirewallBackend {
  readonly name: string;
  /** Replace every rule this backend owns with `plan`'s, atomically where the tool allows. */
  apply(plan: RulePlan): Promise<void>;
  /** The backend's rules as the kernel holds them now (no counters): equal snapshots mean nothing drifted. */
  snapshot(): Promise<string>;
  /** Remove everything this backend owns; idempotent. */
  remove(): Promise<void>;
}

/** Status's `firewall` field. */
export interface FirewallStatusView {
  backend: BackendName | null;
  /** Why no backend is active (off, rootless, no tool), or what is degraded. */
  reason?: string;
  /** Unix seconds of the last reconcile, 0 before the first. */
  lastReconcile: number;
  /** Times a reconcile found rules changed by someone else and put them back. */
  repairs: number;
}

/** A firewall tool refused something; the message names the command and, where known, the rule. */
export class FirewallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FirewallError';
  }
}
