/**
 * Fuzz the RTNETLINK decoder: random datagrams, and mutations (bit flips,
 * truncation, extension, corrupted length fields, splices) of real kernel
 * replies (link / address / route dumps and error ACKs captured from this
 * process's own namespace, read only) and of synthetic ones. Every input goes
 * through the framing, the attribute parser, every object decoder and the
 * reply state machine. The only acceptable outcomes are a result or a
 * NetlinkDecodeError; any other exception (RangeError, TypeError, ...) fails,
 * and a hang would trip the test timeout.
 *
 * Reproduce a failure with FUZZ_SEED=<seed printed on failure>.
 */
import { describe, expect, test } from 'vitest';
import {
  NetlinkDecodeError,
  ReplyCollector,
  addressAttributes,
  bytesAttr,
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
  type AttributeSpec,
} from '../../src/platform/netlink/codec.js';
import * as C from '../../src/platform/netlink/constants.js';
import { Rtnetlink } from '../../src/platform/netlink/rtnetlink.js';
import { NetlinkSocket } from '../../src/platform/netlink/socket.js';
import { Rng, fuzzSeed, shortHex } from '../helpers/fuzz.js';

const RANDOM_CASES = 15_000;
const MUTATED_CASES = 60_000;

/** Everything the decoder offers, on one datagram. */
function exercise(datagram: Uint8Array, rng: Rng): void {
  const attempt = (run: () => unknown): void => {
    try {
      run();
    } catch (error) {
      if (!(error instanceof NetlinkDecodeError)) throw error;
    }
  };
  let messages: ReturnType<typeof decodeMessages> = [];
  attempt(() => {
    messages = decodeMessages(datagram);
  });
  for (const message of messages) {
    attempt(() => parseAttributes(message.payload));
    attempt(() => decodeLink(message));
    attempt(() => decodeAddress(message));
    attempt(() => addressAttributes(message));
    attempt(() => decodeRoute(message));
    attempt(() => decodeError(message));
    attempt(() => decodeDone(message));
    for (const offset of [C.IFINFOMSG_LEN, C.IFADDRMSG_LEN, C.RTMSG_LEN]) {
      attempt(() => {
        for (const attribute of parseAttributes(message.payload.subarray(offset))) parseAttributes(attribute.value);
      });
    }
  }
  const seq = messages[0]?.seq ?? rng.u32();
  for (const mode of ['ack', 'dump'] as const) {
    attempt(() => {
      const collector = new ReplyCollector(seq, rng.chance(0.5) ? 0 : messages[0]?.pid ?? 1, mode);
      collector.feed(datagram);
      collector.feed(datagram);
    });
  }
}

/** Real replies from the kernel, captured with the socket's tap (dumps and lookups only: nothing is changed). */
async function kernelCorpus(): Promise<Uint8Array[]> {
  const captured: Uint8Array[] = [];
  const rt = new Rtnetlink(NetlinkSocket.open({ tap: (d) => captured.push(d) }));
  try {
    await rt.dumpLinks();
    await rt.dumpAddresses();
    await rt.dumpRoutes(4);
    await rt.dumpRoutes(6);
    await rt.linkExists('lo');
    await rt.linkExists('tswg-no-such0'); // an ENODEV error reply
    await rt.bridgeMemberCount('lo');
  } finally {
    rt.close();
  }
  return captured;
}

function randomAttributes(rng: Rng, depth = 0): AttributeSpec[] {
  const out: AttributeSpec[] = [];
  const count = rng.int(6);
  for (let i = 0; i < count; i++) {
    const type = rng.chance(0.7) ? rng.range(1, 40) : rng.int(0x10000) & 0x3fff;
    const pick = rng.int(5);
    if (pick === 0) out.push(u32Attr(type, rng.u32()));
    else if (pick === 1) out.push(stringAttr(type, 'x'.repeat(rng.int(20))));
    else if (pick === 2 && depth < 3) out.push(nestedAttr(type, randomAttributes(rng, depth + 1), rng.chance(0.3) ? rng.bytes(rng.pick([4, 8, 16])) : undefined));
    else out.push(bytesAttr(type, rng.bytes(rng.pick([0, 1, 2, 3, 4, 5, 8, 15, 16, 17, 32]))));
  }
  return out;
}

/** A well-formed datagram of kernel-like messages with random content. */
function syntheticDatagram(rng: Rng): Uint8Array {
  const parts: Uint8Array[] = [];
  const seq = rng.u32();
  const count = rng.range(1, 4);
  for (let i = 0; i < count; i++) {
    const kind = rng.int(6);
    const flags = rng.chance(0.8) ? C.NLM_F_MULTI : rng.int(0x10000);
    if (kind === 0) {
      parts.push(encodeMessage({ type: C.RTM_NEWLINK, flags, seq, header: encodeIfInfoMsg({ index: rng.int(100), flags: rng.u32() }), attributes: [...randomAttributes(rng), stringAttr(C.IFLA_IFNAME, 'eth0')] }));
    } else if (kind === 1) {
      const family = rng.pick([C.AF_INET, C.AF_INET6, 0, 7]);
      parts.push(
        encodeMessage({
          type: C.RTM_NEWADDR,
          flags,
          seq,
          header: encodeIfAddrMsg({ family, prefixLength: rng.int(140), index: rng.int(10) }),
          attributes: [bytesAttr(C.IFA_ADDRESS, rng.bytes(family === C.AF_INET ? 4 : 16)), ...randomAttributes(rng)],
        }),
      );
    } else if (kind === 2) {
      const family = rng.pick([C.AF_INET, C.AF_INET6, 0, 128]);
      parts.push(
        encodeMessage({
          type: C.RTM_NEWROUTE,
          flags,
          seq,
          header: encodeRtMsg({ family, dstLength: rng.int(140), table: rng.int(256) }),
          attributes: [u32Attr(C.RTA_OIF, rng.int(10)), bytesAttr(C.RTA_DST, rng.bytes(rng.pick([4, 16]))), ...randomAttributes(rng)],
        }),
      );
    } else if (kind === 3) {
      const body = new Uint8Array(20);
      const dv = new DataView(body.buffer);
      dv.setInt32(0, -rng.int(140), true);
      dv.setUint32(4, rng.chance(0.8) ? 16 : rng.u32(), true);
      const tlvs = encodeMessage({ type: 0, flags: 0, seq: 0, header: new Uint8Array(0), attributes: [stringAttr(C.NLMSGERR_ATTR_MSG, 'error text'), ...randomAttributes(rng)] }).subarray(16);
      const header = new Uint8Array(body.length + tlvs.length);
      header.set(body);
      header.set(tlvs, body.length);
      parts.push(encodeMessage({ type: C.NLMSG_ERROR, flags: rng.pick([0, C.NLM_F_CAPPED | C.NLM_F_ACK_TLVS, C.NLM_F_ACK_TLVS]), seq, header }));
    } else if (kind === 4) {
      parts.push(encodeMessage({ type: C.NLMSG_DONE, flags: C.NLM_F_MULTI, seq, header: rng.bytes(rng.pick([0, 4, 8])) }));
    } else {
      parts.push(encodeMessage({ type: rng.int(0x10000), flags, seq, header: rng.bytes(rng.int(40)), attributes: randomAttributes(rng) }));
    }
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function join(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function mutate(source: Uint8Array, rng: Rng, corpus: Uint8Array[]): Uint8Array {
  let bytes: Uint8Array = Uint8Array.from(source);
  const rounds = rng.range(1, 4);
  for (let r = 0; r < rounds; r++) {
    if (bytes.length === 0) bytes = rng.bytes(rng.int(64));
    const at = rng.int(Math.max(1, bytes.length));
    switch (rng.int(9)) {
      case 0: // flip bits
        bytes[at] = bytes[at]! ^ (1 << rng.int(8));
        break;
      case 1: // random byte
        bytes[at] = rng.int(256);
        break;
      case 2: // truncate
        bytes = bytes.slice(0, rng.int(bytes.length + 1));
        break;
      case 3: // extend
        bytes = join(bytes, rng.bytes(rng.int(40)));
        break;
      case 4: // corrupt a 16-bit length (nla_len) at a 4-aligned offset
      case 5: {
        // corrupt a 32-bit length (nlmsg_len) at a 4-aligned offset
        const aligned = at & ~3;
        if (aligned + 4 > bytes.length) break;
        const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const value = rng.pick([0, 1, 3, 4, 5, 15, 16, 17, 0xffff, 0xffffffff, bytes.length, bytes.length - aligned, bytes.length - aligned + 4, rng.u32()]);
        if (rng.chance(0.5)) dv.setUint16(aligned, value & 0xffff, true);
        else dv.setUint32(aligned, value >>> 0, true);
        break;
      }
      case 6: {
        // splice with another corpus entry
        const other = rng.pick(corpus);
        const cut = rng.int(other.length + 1);
        bytes = join(bytes.subarray(0, at), other.subarray(cut));
        break;
      }
      case 7: {
        // duplicate a region
        const len = rng.int(Math.min(64, bytes.length - at) + 1);
        bytes = join(bytes.subarray(0, at + len), bytes.subarray(at, at + len), bytes.subarray(at + len));
        break;
      }
      default: // zero a run
        bytes.fill(0, at, at + rng.int(16));
    }
  }
  return bytes;
}

describe('netlink decoder fuzz', () => {
  test(`${RANDOM_CASES} random and ${MUTATED_CASES} mutated replies: results or NetlinkDecodeError, nothing else`, async () => {
    const seed = fuzzSeed();
    const rng = new Rng(seed);
    const kernel = await kernelCorpus();
    expect(kernel.length).toBeGreaterThanOrEqual(6);
    // The unmutated kernel replies decode cleanly.
    for (const datagram of kernel) expect(() => decodeMessages(datagram)).not.toThrow();
    const synthetic = Array.from({ length: 300 }, () => syntheticDatagram(rng));
    for (const datagram of synthetic) expect(() => decodeMessages(datagram)).not.toThrow();
    const corpus = [...kernel, ...synthetic];

    let current: Uint8Array = new Uint8Array(0);
    let decodeErrors = 0;
    try {
      for (let i = 0; i < RANDOM_CASES; i++) {
        current = rng.chance(0.5) ? rng.bytes(rng.int(200)) : syntheticDatagram(rng);
        exercise(current, rng);
      }
      for (let i = 0; i < MUTATED_CASES; i++) {
        current = mutate(rng.pick(corpus), rng, corpus);
        try {
          decodeMessages(current);
        } catch (error) {
          if (error instanceof NetlinkDecodeError) decodeErrors++;
        }
        exercise(current, rng);
      }
    } catch (error) {
      throw new Error(`FUZZ_SEED=${seed}: ${String(error)} on input ${shortHex(current)}`, { cause: error });
    }
    // The mutations did reach the error paths.
    expect(decodeErrors).toBeGreaterThan(MUTATED_CASES / 10);
  });
});
