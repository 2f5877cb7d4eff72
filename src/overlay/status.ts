/**
 * The node's status: the peer-status parser for `wg`-style dumps, the Status
 * snapshot built from the device's own UAPI state, and the tables
 * `tswg node status|peers|nat` print for people (scripts use --json, which
 * is the Status answer as is).
 */
import { formatCidr, formatEndpoint, type UapiDeviceState } from '../device/index.js';
import { encodeKey } from '../noise/index.js';
import { DEFAULT_CLUSTER_CIDR } from './constants.js';
import type { MembershipStatusView, NatStatusWire, PeerStatusView, StatusSnapshot } from './protocol.js';

export type { PeerStatusView, StatusSnapshot } from './protocol.js';

/** One peer block of a dump. */
export interface ParsedPeer {
  publicKey: string;
  /** "" when the block has none. */
  endpoint: string;
  /** The block's allowed_ip values joined with ",". */
  allowedIps: string;
  /** 0 when absent or not a number. */
  lastHandshakeUnixSecs: number;
}

/**
 * Split a `key=value` dump into peer blocks: lines are trimmed
 * and split at the first "="; lines without "=" are ignored; public_key or
 * peer opens a block; endpoint, allowed_ip / allowed_ips and latest_handshake
 * / last_handshake_time_sec fill it; keys before the first peer (the
 * interface's) are ignored.
 */
export function parsePeerStatus(dump: string): ParsedPeer[] {
  const peers: ParsedPeer[] = [];
  let current: ParsedPeer | null = null;
  let allowed: string[] = [];
  const flush = (): void => {
    if (current !== null) {
      current.allowedIps = allowed.join(',');
      peers.push(current);
    }
    current = null;
    allowed = [];
  };
  for (const rawLine of dump.split(/\r?\n/)) {
    const line = rawLine.trim();
    const equals = line.indexOf('=');
    if (equals < 0) continue;
    const key = line.slice(0, equals).trim();
    const value = line.slice(equals + 1).trim();
    switch (key) {
      case 'public_key':
      case 'peer':
        flush();
        current = { publicKey: value, endpoint: '', allowedIps: '', lastHandshakeUnixSecs: 0 };
        break;
      case 'endpoint':
        if (current !== null) (current as ParsedPeer).endpoint = value;
        break;
      case 'allowed_ip':
      case 'allowed_ips':
        if (current !== null) allowed.push(value);
        break;
      case 'latest_handshake':
      case 'last_handshake_time_sec':
        if (current !== null) (current as ParsedPeer).lastHandshakeUnixSecs = parseUnsigned(value);
        break;
      default:
        break;
    }
  }
  flush();
  return peers;
}

/** Rust's `str::parse::<u64>()` then `unwrap_or(0)`: digits only (a leading "+" allowed), within u64 (as a safe JS number). */
function parseUnsigned(text: string): number {
  if (!/^\+?\d+$/.test(text)) return 0;
  const value = Number(text.replace(/^\+/, ''));
  return Number.isSafeInteger(value) ? value : 0;
}

/** Status before SetupGlobalOverlay: no interface, node IP or key; the cluster CIDR is already known (the default until setup names one). */
export function emptyStatus(clusterCidr: string | null = DEFAULT_CLUSTER_CIDR): StatusSnapshot {
  return { interface: null, nodeIp: null, publicKey: null, overlayCidr: clusterCidr, sliceCidr: null, peerCount: 0, serviceCount: 0, peers: [], services: [], dedicatedServices: [] };
}

/**
 * The peers of a device's UAPI state as Status shows them. `connectionTypes`
 * (base64 key → direct / hole-punched / relayed) comes from the NAT tick.
 */
export function peersFromDevice(state: UapiDeviceState, connectionTypes?: ReadonlyMap<string, string>): PeerStatusView[] {
  return state.peers.map((peer) => {
    const publicKey = encodeKey(peer.publicKey);
    const view: PeerStatusView = {
      publicKey,
      endpoint: peer.endpoint === null ? null : formatEndpoint(peer.endpoint),
      allowedIps: peer.allowedIps.map(formatCidr),
      latestHandshake: Math.floor(peer.lastHandshakeTimeMs / 1000),
      rxBytes: peer.rxBytes,
      txBytes: peer.txBytes,
    };
    const connectionType = connectionTypes?.get(publicKey);
    if (connectionType !== undefined) view.connectionType = connectionType;
    return view;
  });
}

// ---- tables for people ---------------------------------------------------------

/** 1536 → "1.50 KiB", as wg(8) prints transfer. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(2)} ${units[unit]}`;
}

/** A handshake time as "never", "now" or "1h 2m 3s ago". */
export function formatHandshakeAge(latestHandshake: number, nowSecs: number): string {
  if (latestHandshake <= 0) return 'never';
  let left = Math.max(0, Math.floor(nowSecs - latestHandshake));
  if (left === 0) return 'now';
  const parts: string[] = [];
  for (const [size, unit] of [
    [86_400, 'd'],
    [3_600, 'h'],
    [60, 'm'],
    [1, 's'],
  ] as const) {
    if (left >= size) {
      parts.push(`${Math.floor(left / size)}${unit}`);
      left %= size;
    }
  }
  return `${parts.join(' ')} ago`;
}

/** Columns padded to their widest cell; the last column is not padded. */
function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

const NONE = '-';

/** One row per peer: key, endpoint, allowed IPs, latest handshake, rx, tx, connection type. */
export function formatPeersTable(peers: readonly PeerStatusView[], nowSecs: number = Date.now() / 1000): string {
  if (peers.length === 0) return 'no peers';
  return formatTable(
    ['PUBLIC KEY', 'ENDPOINT', 'ALLOWED IPS', 'LATEST HANDSHAKE', 'RX', 'TX', 'CONNECTION'],
    peers.map((peer) => [
      peer.publicKey,
      peer.endpoint ?? NONE,
      peer.allowedIps.length === 0 ? NONE : peer.allowedIps.join(','),
      formatHandshakeAge(peer.latestHandshake, nowSecs),
      formatBytes(peer.rxBytes),
      formatBytes(peer.txBytes),
      peer.connectionType ?? NONE,
    ]),
  );
}

/** The node's summary, then its peers. */
export function formatStatusTable(status: StatusSnapshot, nowSecs: number = Date.now() / 1000): string {
  const summary: [string, string][] = [
    ['interface', status.interface ?? '(global overlay not set up)'],
    ['node IP', status.nodeIp ?? NONE],
    ['public key', status.publicKey ?? NONE],
    ['cluster CIDR', status.overlayCidr ?? NONE],
    ['slice CIDR', status.sliceCidr ?? NONE],
    ['peers', String(status.peerCount)],
    ['services', String(status.serviceCount)],
    ...(status.health === undefined ? [] : [['health', status.health] as [string, string]]),
  ];
  const dns = status.dns;
  if (dns !== undefined) {
    const where = dns.listening === null ? 'not listening' : `${dns.listening}, ${dns.domain ?? NONE}, ${dns.records} records`;
    summary.push(['dns', `${where}; ${dns.answered} answered, ${dns.forwarded} forwarded, ${dns.refused} refused, ${dns.malformed} malformed`]);
  }
  if (status.membership !== undefined) summary.push(['membership', describeMembership(status.membership)]);
  const fw = status.firewall;
  if (fw !== undefined) {
    const state = fw.backend === null ? `off${fw.reason === undefined ? '' : ` (${fw.reason})`}` : `${fw.backend}, ${fw.repairs} repair(s)${fw.reason === undefined ? '' : `; ${fw.reason}`}`;
    summary.push(['firewall', state]);
  }
  const width = Math.max(...summary.map(([label]) => label.length)) + 1;
  const head = summary.map(([label, value]) => `${`${label}:`.padEnd(width)} ${value}`).join('\n');
  const services = (status.services ?? []).length === 0 ? '' : `\n\n${formatServicesTable(status)}`;
  return `${head}\n\n${formatPeersTable(status.peers, nowSecs)}${services}`;
}

/** "etcd, healthy, member, revision 42"; "etcd, DEGRADED (etcd unreachable, known peers kept), …" during an outage. */
function describeMembership(view: MembershipStatusView): string {
  if (view.backend === 'static') return 'static (config file and control API)';
  const health = view.healthy ? 'healthy' : 'DEGRADED (etcd unreachable, known peers kept)';
  return `${view.backend}, ${health}, ${view.member ? 'member' : 'not yet a member'}, revision ${view.revision ?? NONE}`;
}

/** One row per service overlay; a dedicated one shows its device, port and peers. */
export function formatServicesTable(status: StatusSnapshot): string {
  const services = status.services ?? [];
  if (services.length === 0) return 'no service overlays';
  const dedicated = new Map((status.dedicatedServices ?? []).map((d) => [d.service, d]));
  return formatTable(
    ['SERVICE', 'MODE', 'BRIDGE', 'SUBNET', 'MEMBERS', 'DEVICE', 'PORT', 'PEERS'],
    services.map((s) => {
      const d = dedicated.get(s.name);
      return [s.name, s.mode, s.bridge, s.subnet, String(s.members), d?.interface ?? NONE, d === undefined ? NONE : String(d.listenPort), d === undefined ? NONE : String(d.peerCount)];
    }),
  );
}

/** `tswg node nat`: the local candidates, the last refresh, and each peer's connection. */
export function formatNatStatusTable(nat: NatStatusWire, nowSecs: number = Date.now() / 1000): string {
  const refreshed = nat.lastRefresh > 0 ? formatHandshakeAge(nat.lastRefresh, nowSecs) : 'never';
  const candidates =
    nat.candidates.length === 0
      ? 'no local candidates'
      : formatTable(
          ['CANDIDATE', 'ADDRESS', 'PRIORITY'],
          nat.candidates.map((c) => [c.candidateType, c.address, String(c.priority)]),
        );
  const peers =
    nat.peers.length === 0
      ? 'no NAT-connected peers'
      : formatTable(
          ['PEER', 'CONNECTION', 'REMOTE ENDPOINT'],
          nat.peers.map((p) => [p.nodeId, p.connectionType, p.remoteEndpoint ?? NONE]),
        );
  return `last refresh: ${refreshed}\n\n${candidates}\n\n${peers}`;
}
