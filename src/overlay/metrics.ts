/**
 * `--metrics`: the node's peers in the Prometheus text exposition format
 * (version 0.0.4), with the metric names, help texts and labels of
 * prometheus_wireguard_exporter (MindFlavor), so dashboards built for it
 * work unchanged:
 *   wireguard_sent_bytes_total{interface,public_key,allowed_ips}         counter
 *   wireguard_received_bytes_total{interface,public_key,allowed_ips}     counter
 *   wireguard_latest_handshake_seconds{interface,public_key,allowed_ips} gauge (unix seconds; 0 = never)
 * plus two of ours:
 *   tswg_peer_connection_type{interface,public_key,type} 1               gauge (NAT tick's verdict)
 *   tswg_node_up 1                                                        gauge (0 while the global device is dead)
 *   tswg_dns_queries_total{result="answered|forwarded|refused|malformed"} counter (the node's resolver)
 * "sent" is what this node sent to the peer (tx), "received" what came from it (rx).
 */
import type { PeerStatusView } from './protocol.js';

/** The resolver's counts (dns/server.ts DnsCounters), one sample each of tswg_dns_queries_total{result}. */
export interface DnsQueryCounts {
  answered: number;
  forwarded: number;
  refused: number;
  malformed: number;
}

/** The Content-Type of the text format. */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** A label value with \ " and newline escaped, as the text format requires. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escaping: only \ and newline. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labels(pairs: readonly (readonly [string, string])[]): string {
  return `{${pairs.map(([name, value]) => `${name}="${escapeLabelValue(value)}"`).join(',')}}`;
}

/** A sample value: integers as integers, anything else in Go's float text (NaN, +Inf, -Inf). */
function sampleValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: string[];
}

/** The metrics page for the device `interfaceName` and its peers. */
export function renderMetrics(interfaceName: string, peers: readonly PeerStatusView[], nodeUp = true, dns?: DnsQueryCounts): string {
  const sent: Family = { name: 'wireguard_sent_bytes_total', help: 'Bytes sent to the peer', type: 'counter', samples: [] };
  const received: Family = { name: 'wireguard_received_bytes_total', help: 'Bytes received from the peer', type: 'counter', samples: [] };
  const handshake: Family = { name: 'wireguard_latest_handshake_seconds', help: 'Seconds from the last handshake', type: 'gauge', samples: [] };
  const connection: Family = {
    name: 'tswg_peer_connection_type',
    help: 'How the NAT traversal reached the peer (direct, hole-punched or relayed); 1 for the current type',
    type: 'gauge',
    samples: [],
  };
  for (const peer of peers) {
    const peerLabels = labels([
      ['interface', interfaceName],
      ['public_key', peer.publicKey],
      ['allowed_ips', peer.allowedIps.join(',')],
    ]);
    sent.samples.push(`${sent.name}${peerLabels} ${sampleValue(peer.txBytes)}`);
    received.samples.push(`${received.name}${peerLabels} ${sampleValue(peer.rxBytes)}`);
    handshake.samples.push(`${handshake.name}${peerLabels} ${sampleValue(peer.latestHandshake)}`);
    if (peer.connectionType !== undefined) {
      const typeLabels = labels([
        ['interface', interfaceName],
        ['public_key', peer.publicKey],
        ['type', peer.connectionType],
      ]);
      connection.samples.push(`${connection.name}${typeLabels} 1`);
    }
  }
  const up: Family = {
    name: 'tswg_node_up',
    help: 'Whether the node is healthy: 1, or 0 while its global WireGuard device is dead (see tswg node status)',
    type: 'gauge',
    samples: [`tswg_node_up ${nodeUp ? 1 : 0}`],
  };
  const families = [sent, received, handshake, connection, up];
  if (dns !== undefined) {
    const queries: Family = {
      name: 'tswg_dns_queries_total',
      help: 'DNS queries to the node resolver: answered locally, forwarded upstream, refused (too many in flight), malformed (dropped)',
      type: 'counter',
      samples: [],
    };
    for (const result of ['answered', 'forwarded', 'refused', 'malformed'] as const) {
      queries.samples.push(`${queries.name}${labels([['result', result]])} ${sampleValue(dns[result])}`);
    }
    families.push(queries);
  }
  const lines: string[] = [];
  for (const family of families) {
    lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`, ...family.samples);
  }
  return `${lines.join('\n')}\n`;
}
