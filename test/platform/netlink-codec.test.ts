/**
 * The RTNETLINK codec without a kernel: byte layouts of requests, framing
 * and attribute parsing of replies, NLMSG_ERROR / extended ACK, the reply
 * state machine, and address text <-> bytes.
 */
import { describe, expect, test } from 'vitest';
import { concatBytes } from '../../src/noise/bytes.js';
import { NetlinkError } from '../../src/platform/errors.js';
import {
  NetlinkDecodeError,
  ReplyCollector,
  decodeAddress,
  decodeDone,
  decodeError,
  decodeLink,
  decodeMessages,
  decodeRoute,
  encodeIfAddrMsg,
  encodeIfInfoMsg,
  encodeMessage,
  encodeRtMsg,
  nestedAttr,
  parseAttributes,
  stringAttr,
  u32Attr,
  bytesAttr,
  type NetlinkMessage,
} from '../../src/platform/netlink/codec.js';
import * as C from '../../src/platform/netlink/constants.js';
import { EBADMSG } from '../../src/platform/errno.js';
import { formatIp, parseIp } from '../../src/platform/netlink/ip-address.js';
import { Rng } from '../helpers/fuzz.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function errorMessage(seq: number, error: number, flags = 0, tlvs: Uint8Array = new Uint8Array(0)): Uint8Array {
  const body = new Uint8Array(4 + 16);
  const dv = new DataView(body.buffer);
  dv.setInt32(0, error, true);
  dv.setUint32(4, 16, true); // echoed header: nlmsg_len 16
  dv.setUint32(12, seq, true);
  return encodeMessage({ type: C.NLMSG_ERROR, flags, seq, header: concatBytes(body, tlvs) });
}

describe('addresses as text', () => {
  test('parse and format, glibc inet_ntop style', () => {
    const cases: [string, string][] = [
      ['0.0.0.0', '0.0.0.0'],
      ['255.255.255.255', '255.255.255.255'],
      ['::', '::'],
      ['::1', '::1'],
      ['1::', '1::'],
      ['FD00:0:0:0:0:0:0:1', 'fd00::1'],
      ['1:0:0:1:0:0:0:1', '1:0:0:1::1'],
      ['1:0:0:0:1:0:0:1', '1::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
      ['::192.0.2.1', '::192.0.2.1'],
      ['fe80::fc:ff:fe00:1', 'fe80::fc:ff:fe00:1'],
      ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ];
    for (const [input, output] of cases) {
      const parsed = parseIp(input);
      expect(parsed, input).not.toBeNull();
      expect(formatIp(parsed!.bytes), input).toBe(output);
    }
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '01.2.3.4', '1.2.3.-4', ':::', '1::2::3', '1:2:3:4:5:6:7:8:9', 'fe80::1%eth0', 'g::1', '12345::', 'abc', ' 1.2.3.4']) {
      expect(parseIp(bad), bad).toBeNull();
    }
    expect(formatIp(new Uint8Array(5))).toBeNull();
  });

  test('formatting agrees with the WHATWG URL serializer on random IPv6 addresses', () => {
    const rng = new Rng(0x5eed);
    for (let i = 0; i < 5000; i++) {
      const bytes = rng.bytes(16);
      for (let g = 0; g < 8; g++) if (rng.chance(0.4)) bytes[2 * g] = bytes[2 * g + 1] = 0;
      // URL never prints the dotted IPv4 tail; skip the two forms where glibc does.
      if (bytes.subarray(0, 10).every((b) => b === 0) && ((bytes[10] === 0 && bytes[11] === 0) || (bytes[10] === 0xff && bytes[11] === 0xff))) continue;
      const text = formatIp(bytes)!;
      expect(text).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
      expect(hex(parseIp(text)!.bytes)).toBe(hex(bytes));
    }
  });
});

describe('encoding', () => {
  test('nlmsghdr, ifinfomsg and padded attributes', () => {
    const message = encodeMessage({
      type: C.RTM_GETLINK,
      flags: C.NLM_F_REQUEST | C.NLM_F_ACK,
      seq: 0x01020304,
      header: encodeIfInfoMsg({ index: 7, flags: C.IFF_UP, change: C.IFF_UP }),
      attributes: [stringAttr(C.IFLA_IFNAME, 'eth0'), u32Attr(C.IFLA_MTU, 1420)],
    });
    expect(hex(message)).toBe(
      [
        '34000000', '1200', '0500', '04030201', '00000000', // nlmsghdr: len 52
        '00000000', '07000000', '01000000', '01000000', // ifinfomsg
        '0900', '0300', '6574683000', '000000', // IFLA_IFNAME "eth0\0" + 3 pad
        '0800', '0400', '8c050000', // IFLA_MTU
      ].join(''),
    );
  });

  test('nested attributes with a fixed header (the veth peer)', () => {
    const peer = nestedAttr(C.VETH_INFO_PEER, [stringAttr(C.IFLA_IFNAME, 'p')], encodeIfInfoMsg());
    const info = nestedAttr(C.IFLA_LINKINFO, [stringAttr(C.IFLA_INFO_KIND, 'veth'), nestedAttr(C.IFLA_INFO_DATA, [peer])]);
    const message = encodeMessage({ type: C.RTM_NEWLINK, flags: 0, seq: 1, header: encodeIfInfoMsg(), attributes: [info] });
    const attrs = parseAttributes(message.subarray(16 + 16));
    expect(attrs).toHaveLength(1);
    expect(attrs[0]).toMatchObject({ type: C.IFLA_LINKINFO, nested: true });
    const inner = parseAttributes(attrs[0]!.value);
    expect(inner.map((a) => a.type)).toEqual([C.IFLA_INFO_KIND, C.IFLA_INFO_DATA]);
    const data = parseAttributes(inner[1]!.value);
    expect(data[0]!.type).toBe(C.VETH_INFO_PEER);
    expect(data[0]!.value.length).toBe(16 + 8); // ifinfomsg + IFLA_IFNAME "p\0" padded
    const peerAttrs = parseAttributes(data[0]!.value.subarray(16));
    expect(Buffer.from(peerAttrs[0]!.value).toString()).toBe('p\0');
  });

  test('ifaddrmsg and rtmsg layouts', () => {
    expect(hex(encodeIfAddrMsg({ family: C.AF_INET6, prefixLength: 64, scope: 0, index: 3 }))).toBe('0a40000003000000');
    expect(hex(encodeRtMsg({ family: C.AF_INET, dstLength: 24, table: 254, protocol: 4, scope: 253, type: 1 }))).toBe('02180000fe04fd0100000000');
  });
});

describe('decoding', () => {
  const link = encodeMessage({
    type: C.RTM_NEWLINK,
    flags: C.NLM_F_MULTI,
    seq: 9,
    pid: 77,
    header: encodeIfInfoMsg({ index: 4, flags: C.IFF_UP | C.IFF_LOWER_UP, type: 1 }),
    attributes: [
      stringAttr(C.IFLA_IFNAME, 'eth0'),
      u32Attr(C.IFLA_MTU, 1500),
      u32Attr(C.IFLA_MASTER, 9),
      nestedAttr(C.IFLA_LINKINFO, [stringAttr(C.IFLA_INFO_KIND, 'veth')]),
    ],
  });
  const address = encodeMessage({
    type: C.RTM_NEWADDR,
    flags: C.NLM_F_MULTI,
    seq: 9,
    header: encodeIfAddrMsg({ family: C.AF_INET, prefixLength: 24, scope: 0, index: 4 }),
    attributes: [bytesAttr(C.IFA_ADDRESS, new Uint8Array([10, 0, 0, 255])), bytesAttr(C.IFA_LOCAL, new Uint8Array([10, 0, 0, 1])), stringAttr(C.IFA_LABEL, 'eth0'), u32Attr(C.IFA_FLAGS, 0x80)],
  });
  const route = encodeMessage({
    type: C.RTM_NEWROUTE,
    flags: C.NLM_F_MULTI,
    seq: 9,
    header: encodeRtMsg({ family: C.AF_INET6, dstLength: 0, table: 254, protocol: 3, scope: 0, type: 1 }),
    attributes: [u32Attr(C.RTA_TABLE, 1000), u32Attr(C.RTA_PRIORITY, 1024), u32Attr(C.RTA_OIF, 4), bytesAttr(C.RTA_GATEWAY, parseIp('fe80::1')!.bytes)],
  });
  const done = encodeMessage({ type: C.NLMSG_DONE, flags: C.NLM_F_MULTI, seq: 9, header: new Uint8Array(4) });

  test('a multipart datagram: link, address, route, done', () => {
    const messages = decodeMessages(concatBytes(link, address, route, done));
    expect(messages.map((m) => m.type)).toEqual([C.RTM_NEWLINK, C.RTM_NEWADDR, C.RTM_NEWROUTE, C.NLMSG_DONE]);
    expect(decodeLink(messages[0]!)).toEqual({ index: 4, name: 'eth0', flags: C.IFF_UP | C.IFF_LOWER_UP, type: 1, mtu: 1500, master: 9, kind: 'veth' });
    expect(decodeAddress(messages[1]!)).toEqual({ index: 4, family: 4, address: '10.0.0.1', prefixLength: 24, scope: 0, flags: 0x80, label: 'eth0' });
    expect(decodeRoute(messages[2]!)).toEqual({ family: 6, dstPrefixLength: 0, table: 1000, priority: 1024, protocol: 3, scope: 0, type: 1, oif: 4, gateway: 'fe80::1' });
    expect(decodeDone(messages[3]!)).toBe(0);
  });

  test('the last message may lack its padding', () => {
    const odd = encodeMessage({ type: C.RTM_NEWLINK, flags: 0, seq: 1, header: encodeIfInfoMsg(), attributes: [stringAttr(C.IFLA_IFNAME, 'a')] });
    const trimmed = odd.subarray(0, odd.length - 2);
    new DataView(trimmed.buffer, trimmed.byteOffset).setUint32(0, trimmed.length, true);
    const [message] = decodeMessages(trimmed);
    expect(decodeLink(message!).name).toBe('a');
  });

  test('malformed input is NetlinkDecodeError, a NetlinkError with EBADMSG', () => {
    const bad: [string, () => unknown][] = [
      ['short header', () => decodeMessages(new Uint8Array(10))],
      ['nlmsg_len < 16', () => decodeMessages(new Uint8Array(16))],
      ['truncated', () => decodeMessages(link.subarray(0, link.length - 4))],
      ['nla_len < 4', () => parseAttributes(new Uint8Array([2, 0, 1, 0]))],
      ['nla_len past the end', () => parseAttributes(new Uint8Array([12, 0, 1, 0, 0, 0, 0, 0]))],
      ['short ifinfomsg', () => decodeLink({ type: 16, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(8) })],
      ['MTU of 2 bytes', () => decodeLink(decodeMessages(encodeMessage({ type: 16, flags: 0, seq: 0, header: encodeIfInfoMsg(), attributes: [bytesAttr(C.IFLA_MTU, new Uint8Array(2))] }))[0]!)],
      ['v4 address of 16 bytes', () => decodeAddress(decodeMessages(encodeMessage({ type: 20, flags: 0, seq: 0, header: encodeIfAddrMsg({ family: C.AF_INET, prefixLength: 8, index: 1 }), attributes: [bytesAttr(C.IFA_ADDRESS, new Uint8Array(16))] }))[0]!)],
      ['address without an address', () => decodeAddress(decodeMessages(encodeMessage({ type: 20, flags: 0, seq: 0, header: encodeIfAddrMsg({ family: C.AF_INET, prefixLength: 8, index: 1 }) }))[0]!)],
      ['prefix 33', () => decodeRoute(decodeMessages(encodeMessage({ type: 24, flags: 0, seq: 0, header: encodeRtMsg({ family: C.AF_INET, dstLength: 33 }) }))[0]!)],
      ['error payload < 4', () => decodeError({ type: 2, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(2) })],
      ['positive error', () => decodeError(decodeMessages(errorMessage(1, 5))[0]!)],
    ];
    for (const [what, run] of bad) {
      let caught: unknown = null;
      try {
        run();
      } catch (error) {
        caught = error;
      }
      expect(caught, what).toBeInstanceOf(NetlinkDecodeError);
      expect(caught, what).toBeInstanceOf(NetlinkError);
      expect((caught as NetlinkError).errno, what).toBe(EBADMSG);
    }
  });

  test('other address families are skipped, not errors', () => {
    const bridgeRoute = encodeMessage({ type: 24, flags: 0, seq: 0, header: encodeRtMsg({ family: 7 }) });
    expect(decodeRoute(decodeMessages(bridgeRoute)[0]!)).toBeNull();
    const packetAddress = encodeMessage({ type: 20, flags: 0, seq: 0, header: encodeIfAddrMsg({ family: 17, prefixLength: 0, index: 1 }) });
    expect(decodeAddress(decodeMessages(packetAddress)[0]!)).toBeNull();
  });

  test('NLMSG_ERROR: errno, and the extended-ack text when capped or not', () => {
    const text = stringAttr(C.NLMSGERR_ATTR_MSG, 'Device for nexthop is not up');
    const tlvs = encodeMessage({ type: 0, flags: 0, seq: 0, header: new Uint8Array(0), attributes: [text] }).subarray(16);
    const capped = decodeError(decodeMessages(errorMessage(5, -100, C.NLM_F_CAPPED | C.NLM_F_ACK_TLVS, tlvs))[0]!);
    expect(capped).toEqual({ errno: 100, extack: 'Device for nexthop is not up' });
    expect(decodeError(decodeMessages(errorMessage(5, 0))[0]!)).toEqual({ errno: 0 });
    // A garbled extended ack does not hide the errno.
    const garbled = decodeError(decodeMessages(errorMessage(5, -17, C.NLM_F_CAPPED | C.NLM_F_ACK_TLVS, new Uint8Array([200, 0, 1, 0])))[0]!);
    expect(garbled).toEqual({ errno: 17 });
  });
});

describe('ReplyCollector', () => {
  const msg = (type: number, seq: number, flags = 0, pid = 0): Uint8Array => encodeMessage({ type, flags, seq, pid, header: encodeIfInfoMsg() });

  test('ack mode: messages before the ACK, late replies to other requests ignored', () => {
    const c = new ReplyCollector(10, 55, 'ack');
    expect(c.feed(concatBytes(errorMessage(9, -19), msg(C.RTM_NEWLINK, 10, 0, 55)))).toBe(false);
    expect(c.feed(msg(C.RTM_NEWLINK, 10, 0, 56))).toBe(false); // another port
    expect(c.feed(errorMessage(10, 0))).toBe(true);
    expect(c.errno).toBe(0);
    expect(c.messages.map((m: NetlinkMessage) => m.type)).toEqual([C.RTM_NEWLINK]);
  });

  test('dump mode: DONE ends it; DUMP_INTR is noted; an error ends it with errno', () => {
    const c = new ReplyCollector(3, 0, 'dump');
    expect(c.feed(concatBytes(msg(C.RTM_NEWLINK, 3, C.NLM_F_MULTI), msg(C.RTM_NEWLINK, 3, C.NLM_F_MULTI | C.NLM_F_DUMP_INTR)))).toBe(false);
    expect(c.feed(concatBytes(encodeMessage({ type: C.NLMSG_DONE, flags: C.NLM_F_MULTI, seq: 3, header: new Uint8Array(4) }), msg(C.RTM_NEWLINK, 3)))).toBe(true);
    expect(c.messages).toHaveLength(2);
    expect(c.interrupted).toBe(true);
    const e = new ReplyCollector(4, 0, 'dump');
    expect(e.feed(errorMessage(4, -1))).toBe(true);
    expect(e.errno).toBe(1);
    const d = new ReplyCollector(5, 0, 'dump');
    const doneWithError = new Uint8Array(4);
    new DataView(doneWithError.buffer).setInt32(0, -16, true);
    expect(d.feed(encodeMessage({ type: C.NLMSG_DONE, flags: 0, seq: 5, header: doneWithError }))).toBe(true);
    expect(d.errno).toBe(16);
  });

  test('NLMSG_OVERRUN is a decode error', () => {
    expect(() => new ReplyCollector(1, 0, 'dump').feed(msg(C.NLMSG_OVERRUN, 1))).toThrow(NetlinkDecodeError);
  });
});
