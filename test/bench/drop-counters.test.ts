import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { difference, dropLine, readSide, type SideCounters } from '../../bench/lib/drop-counters.js';
import { cleanup, createNamespace, ip, setNamePrefix, startIn, waitUntil } from '../../scripts/lib/netns.js';

const PORT = 40_123;
const DATAGRAMS = 3000;
const READY = 'flooded';

/**
 * A socket with the smallest receive buffer that is never read, flooded from
 * the same namespace, then held open: the kernel drops what does not fit, on
 * that socket.
 */
const FLOOD = `
import socket, sys, time
held = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
held.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
held.bind(('127.0.0.1', ${PORT}))
sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(${DATAGRAMS}):
    sender.sendto(b'x' * 1200, ('127.0.0.1', ${PORT}))
print('${READY}', flush=True)
time.sleep(60)
`;

describe('bench:e2e --counters: the kernel drop counters', () => {
  let namespace = '';

  beforeAll(() => {
    setNamePrefix('udpd-');
    namespace = createNamespace();
    ip(namespace, 'link', 'set', 'dev', 'lo', 'up');
  });
  afterAll(() => cleanup());

  it("counts a flooded socket's overflow on that socket and in the namespace's UDP errors, not on another port", async () => {
    const side = { namespace, tunnel: 'lo', veth: 'lo', port: PORT };
    const other = { ...side, port: PORT + 1 };
    const before = readSide(side);
    const otherBefore = readSide(other);
    const flood = startIn(namespace, 'python3', ['-c', FLOOD], { name: 'udp flood' });
    try {
      await waitUntil(() => flood.output().includes(READY) || !flood.running(), 'the flood', 10_000);
      expect(flood.output()).toContain(READY);
      const delta = difference(readSide(side), before);
      expect(delta.outerSocketDrops).toBeGreaterThan(DATAGRAMS / 2);
      expect(delta.udpRcvbufErrors).toBeGreaterThanOrEqual(delta.outerSocketDrops);
      expect(delta.udpSndbufErrors).toBe(0);
      expect(delta.tunTxDropped + delta.tunRxDropped + delta.tunQdiscDrops).toBe(0);
      expect(difference(readSide(other), otherBefore).outerSocketDrops).toBe(0);
    } finally {
      await flood.stop(500);
    }
  });

  it('accounts every datagram from the sender to the receiver', () => {
    const zero: SideCounters = { tunTxDropped: 0, tunRxDropped: 0, tunQdiscDrops: 0, vethTxDropped: 0, vethRxDropped: 0, vethTxPackets: 0, outerSocketDrops: 0, udpRcvbufErrors: 0, udpSndbufErrors: 0 };
    const sender = { ...zero, tunTxDropped: 600, tunQdiscDrops: 10 };
    const receiver = { ...zero, outerSocketDrops: 50, udpRcvbufErrors: 170 };
    expect(dropLine(sender, receiver, 1000, 200)).toBe(
      'sent 1000, sender TUN queue 610, sender sndbuf 0, veth 0, receiver outer socket 50, receiver TUN rx 0, receiver iperf3 socket 120, received 200, unaccounted 20',
    );
    expect(dropLine({ ...sender, vethTxPackets: 130 }, receiver, 1000, 200)).toMatch(/, unaccounted 20 \(130 outer packets on the veth, 3\.0 datagrams each\)$/);
  });
});
