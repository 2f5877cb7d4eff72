/**
 * The synchronous NETLINK_ROUTE socket: a request the kernel never answers
 * ends in a NetlinkError (ETIMEDOUT) after the socket's timeout instead of
 * blocking the event loop, the socket stays usable afterwards, and a closed
 * socket fails cleanly. Read-only against the process's own namespace.
 */
import { describe, expect, test } from 'vitest';
import { NetlinkError } from '../../src/platform/errors.js';
import { encodeIfInfoMsg, stringAttr } from '../../src/platform/netlink/codec.js';
import { IFLA_IFNAME, NLM_F_REQUEST, RTM_GETLINK, RTM_NEWLINK } from '../../src/platform/netlink/constants.js';
import { Rtnetlink } from '../../src/platform/netlink/rtnetlink.js';
import { NetlinkSocket } from '../../src/platform/netlink/socket.js';

describe('NetlinkSocket', () => {
  test('no answer: ETIMEDOUT after the timeout, never an endless block; the socket then works again', () => {
    const socket = NetlinkSocket.open({ timeoutMs: 200 });
    try {
      const start = Date.now();
      // Without NLM_F_REQUEST (and NLM_F_ACK) the kernel drops the message silently.
      let caught: unknown = null;
      try {
        socket.transact(RTM_GETLINK, 0, encodeIfInfoMsg(), [stringAttr(IFLA_IFNAME, 'lo')], 'silent request', 'ack');
      } catch (error) {
        caught = error;
      }
      const elapsed = Date.now() - start;
      expect(caught).toBeInstanceOf(NetlinkError);
      expect((caught as NetlinkError).errno).toBe(110);
      expect((caught as NetlinkError).code).toBe('ETIMEDOUT');
      expect((caught as Error).message).toContain('silent request');
      expect(elapsed).toBeGreaterThanOrEqual(150);
      expect(elapsed).toBeLessThan(5000);
      const links = socket.request(RTM_GETLINK, 0, encodeIfInfoMsg(), [stringAttr(IFLA_IFNAME, 'lo')], 'lookup lo');
      expect(links.filter((m) => m.type === RTM_NEWLINK)).toHaveLength(1);
    } finally {
      socket.close();
    }
  });

  test('an answer without the awaited ACK times out; the socket stays in step afterwards', () => {
    const socket = NetlinkSocket.open({ timeoutMs: 200 });
    try {
      // NLM_F_REQUEST without NLM_F_ACK: the kernel sends the link, never an ACK.
      let caught: unknown = null;
      try {
        socket.transact(RTM_GETLINK, NLM_F_REQUEST, encodeIfInfoMsg(), [stringAttr(IFLA_IFNAME, 'lo')], 'unacknowledged lookup', 'ack');
      } catch (error) {
        caught = error;
      }
      expect((caught as NetlinkError).code).toBe('ETIMEDOUT');
      const rt = new Rtnetlink(socket);
      for (let i = 0; i < 3; i++) {
        expect(rt.linkByName('lo')?.name).toBe('lo');
        expect(rt.dumpLinksSync().some((l) => l.name === 'lo')).toBe(true);
      }
    } finally {
      socket.close();
    }
  });

  test('a closed socket fails with EBADF; a lazily opened Rtnetlink reopens', async () => {
    const socket = NetlinkSocket.open();
    socket.close();
    socket.close();
    expect(socket.closed).toBe(true);
    expect(() => socket.dump(RTM_GETLINK, encodeIfInfoMsg(), [], 'dump')).toThrow(NetlinkError);
    const rt = new Rtnetlink();
    expect(await rt.linkExists('lo')).toBe(true);
    rt.close();
    expect(await rt.linkExists('lo')).toBe(true);
    rt.close();
  });
});
