/**
 * Where a UDP test's datagrams die, read from the kernel on both sides of a
 * pair (bench:e2e --counters): the tunnel interface's and its qdisc's drops
 * (the TUN queue overflows when the WireGuard process reads too slowly),
 * the outer WireGuard socket's own drops (/proc/net/udp{,6} drops column:
 * its receive buffer overflowed), the namespace's UDP buffer errors
 * (/proc/net/snmp{,6}: the outer socket plus the iperf3 socket, so the
 * difference is the iperf3 receiver's) and the veth's drops.
 */
import { execIn } from '../../scripts/lib/netns.js';

export interface SideCounters {
  /** Tunnel interface: packets the kernel dropped on the way to the WireGuard process (TUN queue full) and on the way back in. */
  tunTxDropped: number;
  tunRxDropped: number;
  /** The tunnel interface's qdisc drops. */
  tunQdiscDrops: number;
  vethTxDropped: number;
  vethRxDropped: number;
  /** Packets the veth sent: with UDP GSO one per super-datagram, so it shows how many segments a send carried. */
  vethTxPackets: number;
  /** The outer WireGuard socket(s) of this side: receive-buffer drops. */
  outerSocketDrops: number;
  /** Namespace-wide UDP receive-buffer and send-buffer errors, v4 + v6. */
  udpRcvbufErrors: number;
  udpSndbufErrors: number;
}

export interface SideNames {
  namespace: string;
  tunnel: string;
  veth: string;
  /** The outer WireGuard listen port. */
  port: number;
}

function linkDrops(namespace: string, name: string): { tx: number; rx: number; txPackets: number } {
  const [link] = JSON.parse(execIn(namespace, 'ip', ['-s', '-j', 'link', 'show', 'dev', name])) as { stats64: { tx: { dropped: number; packets: number }; rx: { dropped: number } } }[];
  return { tx: link?.stats64.tx.dropped ?? 0, rx: link?.stats64.rx.dropped ?? 0, txPackets: link?.stats64.tx.packets ?? 0 };
}

function qdiscDrops(namespace: string, name: string): number {
  const qdiscs = JSON.parse(execIn(namespace, 'tc', ['-s', '-j', 'qdisc', 'show', 'dev', name])) as { drops?: number }[];
  return qdiscs.reduce((sum, qdisc) => sum + (qdisc.drops ?? 0), 0);
}

/** Sum of the drops column of every socket bound to `port` in /proc/net/udp and udp6. */
function socketDrops(namespace: string, port: number): number {
  const portHex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let drops = 0;
  for (const table of ['/proc/net/udp', '/proc/net/udp6']) {
    for (const line of execIn(namespace, 'cat', [table]).split('\n').slice(1)) {
      const columns = line.trim().split(/\s+/);
      if (columns.length < 13 || !columns[1]!.endsWith(portHex)) continue;
      drops += Number(columns[columns.length - 1]);
    }
  }
  return drops;
}

/** /proc/net/snmp's Udp: RcvbufErrors and SndbufErrors plus /proc/net/snmp6's Udp6 ones. */
function udpBufferErrors(namespace: string): { rcvbuf: number; sndbuf: number } {
  const snmp = execIn(namespace, 'cat', ['/proc/net/snmp']).split('\n').filter((line) => line.startsWith('Udp: '));
  const names = snmp[0]?.split(/\s+/) ?? [];
  const values = snmp[1]?.split(/\s+/).map(Number) ?? [];
  const v4 = (name: string): number => values[names.indexOf(name)] ?? 0;
  const snmp6 = new Map(
    execIn(namespace, 'cat', ['/proc/net/snmp6'])
      .split('\n')
      .map((line) => line.trim().split(/\s+/) as [string, string])
      .map(([name, value]) => [name, Number(value)]),
  );
  return { rcvbuf: v4('RcvbufErrors') + (snmp6.get('Udp6RcvbufErrors') ?? 0), sndbuf: v4('SndbufErrors') + (snmp6.get('Udp6SndbufErrors') ?? 0) };
}

export function readSide(side: SideNames): SideCounters {
  const tun = linkDrops(side.namespace, side.tunnel);
  const veth = linkDrops(side.namespace, side.veth);
  const udp = udpBufferErrors(side.namespace);
  return {
    tunTxDropped: tun.tx,
    tunRxDropped: tun.rx,
    tunQdiscDrops: qdiscDrops(side.namespace, side.tunnel),
    vethTxDropped: veth.tx,
    vethRxDropped: veth.rx,
    vethTxPackets: veth.txPackets,
    outerSocketDrops: socketDrops(side.namespace, side.port),
    udpRcvbufErrors: udp.rcvbuf,
    udpSndbufErrors: udp.sndbuf,
  };
}

export function difference(after: SideCounters, before: SideCounters): SideCounters {
  const result = { ...after };
  for (const key of Object.keys(after) as (keyof SideCounters)[]) result[key] = after[key] - before[key];
  return result;
}

/**
 * One line per test: where the datagrams went, from the sender's side to the
 * receiver's. `sent` is what iperf3's sender handed to its socket, `received`
 * what its receiver got.
 */
export function dropLine(sender: SideCounters, receiver: SideCounters, sent: number, received: number): string {
  const iperf3Receiver = receiver.udpRcvbufErrors - receiver.outerSocketDrops;
  const parts = [
    `sent ${sent}`,
    `sender TUN queue ${sender.tunTxDropped + sender.tunQdiscDrops}`,
    `sender sndbuf ${sender.udpSndbufErrors}`,
    `veth ${sender.vethTxDropped + receiver.vethRxDropped}`,
    `receiver outer socket ${receiver.outerSocketDrops}`,
    `receiver TUN rx ${receiver.tunRxDropped}`,
    `receiver iperf3 socket ${iperf3Receiver}`,
    `received ${Math.round(received)}`,
  ];
  // What got past the sender's TUN queue left in this many packets on the wire side: segments per UDP GSO send.
  const reachedSender = sent - sender.tunTxDropped - sender.tunQdiscDrops;
  const perSend = sender.vethTxPackets > 0 ? ` (${sender.vethTxPackets} outer packets on the veth, ${(reachedSender / sender.vethTxPackets).toFixed(1)} datagrams each)` : '';
  const accounted = sender.tunTxDropped + sender.tunQdiscDrops + sender.udpSndbufErrors + sender.vethTxDropped + receiver.vethRxDropped + receiver.outerSocketDrops + receiver.tunRxDropped + iperf3Receiver;
  parts.push(`unaccounted ${Math.round(sent - received - accounted)}`);
  return parts.join(', ') + perSend;
}
