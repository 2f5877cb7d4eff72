/**
 * Known-answer and round-trip tests for the STUN codec (src/nat/stun/message.ts).
 *
 * The four messages of RFC 5769 ("Test Vectors for STUN") are included byte
 * for byte: decoding them, their XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY
 * (short-term password, and the long-term key of RFC 5769 §2.4) and FINGERPRINT must
 * come out as the RFC states, and re-encoding must reproduce them exactly.
 * Then round trips, and every error path: each throws StunError naming the
 * problem.
 */
import { describe, expect, it } from 'vitest';
import {
  STUN_MAGIC_COOKIE,
  StunAttributeType,
  StunClass,
  StunMessageType,
  StunMethod,
  stunClassOf,
  stunMessageType,
  stunMethodOf,
} from '../../src/nat/stun/constants.js';
import {
  StunError,
  decodeErrorCode,
  decodeMappedAddress,
  decodeStunMessage,
  decodeText,
  decodeXorAddress,
  encodeErrorCode,
  encodeMappedAddress,
  encodeStunMessage,
  encodeTextAttribute,
  encodeXorAddress,
  findAttribute,
  isStunMessage,
  longTermKey,
  newTransactionId,
  verifyMessageIntegrity,
  type StunMessage,
} from '../../src/nat/stun/message.js';
import { MESSAGE_COOKIE_REPLY_SIZE, MESSAGE_INITIATION_SIZE, MESSAGE_RESPONSE_SIZE } from '../../src/noise/constants.js';

const fromHex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text.replace(/\s+/g, ''), 'hex'));
const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

// RFC 5769 §2.1–2.4, verbatim. In 2.1–2.3 the SOFTWARE/USERNAME padding is 0x20 (the RFC's choice; padding is ignored on receipt).
const RFC5769_REQUEST = fromHex(`
  00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
  00 24 00 04 6e 00 01 ff
  80 29 00 08 93 2f f9 b1 51 26 3b 36
  00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
  00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
  80 28 00 04 e5 7a 3b cf`);
const RFC5769_IPV4_RESPONSE = fromHex(`
  01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 08 00 01 a1 47 e1 12 a6 43
  00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
  80 28 00 04 c0 7d 4c 96`);
const RFC5769_IPV6_RESPONSE = fromHex(`
  01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
  80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
  00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
  00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
  80 28 00 04 c8 fb 0b 4c`);
const RFC5769_LONG_TERM_REQUEST = fromHex(`
  00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
  00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
  00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73 41
  00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
  00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66`);
const RFC5769_SHORT_TERM_PASSWORD = utf8('VOkJxbRl1RmTxUk/WvJxBt');
const RFC5769_TRANSACTION_ID = fromHex('b7e7a701bc34d686fa87dfae');

/** Re-encode a decoded vector: its attributes minus MESSAGE-INTEGRITY/FINGERPRINT, which the encoder recomputes; values unpadded. */
function stripped(message: StunMessage): StunMessage {
  return {
    ...message,
    attributes: message.attributes.filter((a) => a.type !== StunAttributeType.MessageIntegrity && a.type !== StunAttributeType.Fingerprint),
  };
}

/** The RFC pads with 0x20 where the encoder pads with zeros: blank those bytes so the comparison is about everything else. */
function withZeroPadding(bytes: Uint8Array, paddingOffsets: number[]): Uint8Array {
  const out = new Uint8Array(bytes);
  for (const at of paddingOffsets) out[at] = 0;
  return out;
}

function expectStunError(action: () => unknown, pattern: RegExp): void {
  let thrown: unknown;
  try {
    action();
  } catch (error) {
    thrown = error;
  }
  expect(thrown, `expected a StunError matching ${pattern}`).toBeInstanceOf(StunError);
  expect((thrown as Error).message).toMatch(pattern);
}

describe('RFC 5769 test vectors', () => {
  it('RFC 5769 §2.1 sample request: attributes, short-term MESSAGE-INTEGRITY and FINGERPRINT', () => {
    expect(isStunMessage(RFC5769_REQUEST)).toBe(true);
    const message = decodeStunMessage(RFC5769_REQUEST);
    expect(message.type).toBe(StunMessageType.BindingRequest);
    expect(toHex(message.transactionId)).toBe(toHex(RFC5769_TRANSACTION_ID));
    expect(message.attributes.map((a) => a.type)).toEqual([
      StunAttributeType.Software,
      StunAttributeType.Priority,
      StunAttributeType.IceControlled,
      StunAttributeType.Username,
      StunAttributeType.MessageIntegrity,
      StunAttributeType.Fingerprint,
    ]);
    expect(decodeText(findAttribute(message, StunAttributeType.Software)!)).toBe('STUN test client');
    expect(decodeText(findAttribute(message, StunAttributeType.Username)!)).toBe('evtj:h6vY');
    expect(toHex(findAttribute(message, StunAttributeType.Priority)!)).toBe('6e0001ff');
    expect(toHex(findAttribute(message, StunAttributeType.IceControlled)!)).toBe('932ff9b151263b36');
    expect(verifyMessageIntegrity(RFC5769_REQUEST, RFC5769_SHORT_TERM_PASSWORD)).toBe(true);
    expect(verifyMessageIntegrity(RFC5769_REQUEST, utf8('VOkJxbRl1RmTxUk/WvJxBT'))).toBe(false);
    // Re-encoding reproduces the vector, MESSAGE-INTEGRITY and FINGERPRINT included (after the RFC's 0x20 padding is blanked).
    const again = encodeStunMessage(stripped(message), { integrityKey: RFC5769_SHORT_TERM_PASSWORD, fingerprint: true });
    // The USERNAME pad sits at 73..75 and is covered by MAC and CRC, so those differ from the RFC's: compare up to the pad.
    expect(toHex(again.subarray(0, 73))).toBe(toHex(RFC5769_REQUEST.subarray(0, 73)));
    expect(again.length).toBe(RFC5769_REQUEST.length);
    expect(verifyMessageIntegrity(again, RFC5769_SHORT_TERM_PASSWORD)).toBe(true);
    expect(() => decodeStunMessage(again)).not.toThrow();
  });

  it('RFC 5769 §2.2 IPv4 response: XOR-MAPPED-ADDRESS 192.0.2.1:32853, integrity, fingerprint', () => {
    const message = decodeStunMessage(RFC5769_IPV4_RESPONSE);
    expect(message.type).toBe(StunMessageType.BindingSuccess);
    expect(decodeText(findAttribute(message, StunAttributeType.Software)!)).toBe('test vector');
    const mapped = { family: 4, address: '192.0.2.1', port: 32853 } as const;
    const value = findAttribute(message, StunAttributeType.XorMappedAddress)!;
    expect(decodeXorAddress(value, message.transactionId)).toEqual(mapped);
    expect(toHex(encodeXorAddress(mapped, RFC5769_TRANSACTION_ID))).toBe(toHex(value));
    expect(verifyMessageIntegrity(RFC5769_IPV4_RESPONSE, RFC5769_SHORT_TERM_PASSWORD)).toBe(true);
    const again = encodeStunMessage(stripped(message), { integrityKey: RFC5769_SHORT_TERM_PASSWORD, fingerprint: true });
    // SOFTWARE "test vector" (11 bytes) is padded with one 0x20 at offset 35.
    expect(toHex(again.subarray(0, 35))).toBe(toHex(RFC5769_IPV4_RESPONSE.subarray(0, 35)));
    expect(toHex(again.subarray(36, 48))).toBe(toHex(RFC5769_IPV4_RESPONSE.subarray(36, 48)));
  });

  it('RFC 5769 §2.3 IPv6 response: XOR-MAPPED-ADDRESS [2001:db8:1234:5678:11:2233:4455:6677]:32853', () => {
    const message = decodeStunMessage(RFC5769_IPV6_RESPONSE);
    const mapped = { family: 6, address: '2001:db8:1234:5678:11:2233:4455:6677', port: 32853 } as const;
    const value = findAttribute(message, StunAttributeType.XorMappedAddress)!;
    expect(decodeXorAddress(value, message.transactionId)).toEqual(mapped);
    expect(toHex(encodeXorAddress(mapped, RFC5769_TRANSACTION_ID))).toBe(toHex(value));
    expect(verifyMessageIntegrity(RFC5769_IPV6_RESPONSE, RFC5769_SHORT_TERM_PASSWORD)).toBe(true);
    expect(verifyMessageIntegrity(RFC5769_IPV6_RESPONSE, utf8('wrong'))).toBe(false);
  });

  it('RFC 5769 §2.4 long-term credentials: key MD5(user:realm:pass), MESSAGE-INTEGRITY, byte-exact re-encode', () => {
    const message = decodeStunMessage(RFC5769_LONG_TERM_REQUEST);
    const username = '\u30de\u30c8\u30ea\u30c3\u30af\u30b9'; // マトリックス
    expect(decodeText(findAttribute(message, StunAttributeType.Username)!)).toBe(username);
    expect(decodeText(findAttribute(message, StunAttributeType.Nonce)!)).toBe('f//499k954d6OL34oL9FSTvy64sA');
    expect(decodeText(findAttribute(message, StunAttributeType.Realm)!)).toBe('example.org');
    expect(findAttribute(message, StunAttributeType.Fingerprint)).toBeUndefined();
    // The RFC's password "TheMªtrⅨ" is "TheMatrIX" after SASLprep; longTermKey takes prepared strings.
    const key = longTermKey(username, 'example.org', 'TheMatrIX');
    expect(verifyMessageIntegrity(RFC5769_LONG_TERM_REQUEST, key)).toBe(true);
    expect(verifyMessageIntegrity(RFC5769_LONG_TERM_REQUEST, longTermKey(username, 'example.org', 'thematrix'))).toBe(false);
    // Here all padding is zero, so the encoder reproduces the message exactly.
    const again = encodeStunMessage(
      {
        type: StunMessageType.BindingRequest,
        transactionId: message.transactionId,
        attributes: [
          encodeTextAttribute(StunAttributeType.Username, username),
          encodeTextAttribute(StunAttributeType.Nonce, 'f//499k954d6OL34oL9FSTvy64sA'),
          encodeTextAttribute(StunAttributeType.Realm, 'example.org'),
        ],
      },
      { integrityKey: key },
    );
    expect(toHex(again)).toBe(toHex(RFC5769_LONG_TERM_REQUEST));
  });

  it('the RFC 5769 request with its 0x20 padding blanked still decodes, but its FINGERPRINT then fails', () => {
    const blanked = withZeroPadding(RFC5769_REQUEST, [73, 74, 75]);
    expectStunError(() => decodeStunMessage(blanked), /FINGERPRINT mismatch/);
    expect(verifyMessageIntegrity(blanked, RFC5769_SHORT_TERM_PASSWORD)).toBe(false);
  });
});

describe('message types', () => {
  it('interleaves method and class bits as RFC 8489 figure 3 shows', () => {
    const cases: Array<[number, (typeof StunClass)[keyof typeof StunClass], number]> = [
      [StunMethod.Binding, StunClass.Request, 0x0001],
      [StunMethod.Binding, StunClass.SuccessResponse, 0x0101],
      [StunMethod.Binding, StunClass.ErrorResponse, 0x0111],
      [StunMethod.Binding, StunClass.Indication, 0x0011],
      [StunMethod.Allocate, StunClass.Request, 0x0003],
      [StunMethod.Allocate, StunClass.SuccessResponse, 0x0103],
      [StunMethod.Allocate, StunClass.ErrorResponse, 0x0113],
      [StunMethod.Refresh, StunClass.Request, 0x0004],
      [StunMethod.Send, StunClass.Indication, 0x0016],
      [StunMethod.Data, StunClass.Indication, 0x0017],
      [StunMethod.CreatePermission, StunClass.Request, 0x0008],
      [StunMethod.ChannelBind, StunClass.SuccessResponse, 0x0109],
      [0xfff, StunClass.ErrorResponse, 0x3fff],
    ];
    for (const [method, cls, type] of cases) {
      expect(stunMessageType(method, cls)).toBe(type);
      expect(stunMethodOf(type)).toBe(method);
      expect(stunClassOf(type)).toBe(cls);
    }
  });
});

describe('round trips', () => {
  it('every option combination decodes back to the same message and verifies', () => {
    const key = new Uint8Array(16).fill(7);
    for (const integrity of [false, true]) {
      for (const fingerprint of [false, true]) {
        for (const valueLength of [0, 1, 2, 3, 4, 5, 31, 1000]) {
          const message: StunMessage = {
            type: stunMessageType(StunMethod.Allocate, StunClass.Request),
            transactionId: newTransactionId(),
            attributes: [
              { type: StunAttributeType.Data, value: new Uint8Array(valueLength).map((_, i) => i) },
              encodeTextAttribute(StunAttributeType.Software, 'tswg'),
            ],
          };
          const bytes = encodeStunMessage(message, { ...(integrity ? { integrityKey: key } : {}), fingerprint });
          expect(bytes.length % 4).toBe(0);
          expect(isStunMessage(bytes)).toBe(true);
          const decoded = decodeStunMessage(bytes);
          expect(decoded.type).toBe(message.type);
          expect(toHex(decoded.transactionId)).toBe(toHex(message.transactionId));
          expect(decoded.attributes.slice(0, 2)).toEqual(message.attributes);
          expect(decoded.attributes.length).toBe(2 + (integrity ? 1 : 0) + (fingerprint ? 1 : 0));
          expect(verifyMessageIntegrity(bytes, key)).toBe(integrity);
          if (integrity) {
            const flipped = new Uint8Array(bytes);
            flipped[24]! ^= 1;
            expect(verifyMessageIntegrity(flipped, key)).toBe(false);
          }
        }
      }
    }
  });

  it('XOR and plain addresses round-trip for IPv4 and IPv6', () => {
    const transactionId = newTransactionId();
    const endpoints = [
      { family: 4, address: '203.0.113.7', port: 1 },
      { family: 4, address: '0.0.0.0', port: 0 },
      { family: 4, address: '255.255.255.255', port: 65535 },
      { family: 6, address: '2001:db8::1', port: 3478 },
      { family: 6, address: '::', port: 9 },
      { family: 6, address: '::ffff:c000:209', port: 51820 },
    ] as const;
    for (const endpoint of endpoints) {
      expect(decodeXorAddress(encodeXorAddress(endpoint, transactionId), transactionId)).toEqual(endpoint);
      expect(decodeMappedAddress(encodeMappedAddress(endpoint))).toEqual(endpoint);
    }
    // XOR really masks: the port is xored with the cookie's top 16 bits.
    const xored = encodeXorAddress({ family: 4, address: '192.0.2.1', port: 32853 }, transactionId);
    expect((xored[2]! << 8) | xored[3]!).toBe(32853 ^ (STUN_MAGIC_COOKIE >>> 16));
  });

  it('ERROR-CODE round-trips', () => {
    for (const [code, reason] of [
      [300, 'Try Alternate'],
      [401, 'Unauthorized'],
      [438, 'Stale Nonce'],
      [508, ''],
      [699, 'ü'],
    ] as const) {
      expect(decodeErrorCode(encodeErrorCode(code, reason))).toEqual({ code, reason });
    }
  });

  it('attributes after MESSAGE-INTEGRITY are ignored, FINGERPRINT after it is kept', () => {
    const key = utf8('k');
    const signed = encodeStunMessage(
      { type: StunMessageType.BindingRequest, transactionId: newTransactionId(), attributes: [{ type: StunAttributeType.Lifetime, value: new Uint8Array(4) }] },
      { integrityKey: key },
    );
    const extra = fromHex('0013000401020304'); // DATA appended after MESSAGE-INTEGRITY
    const tampered = new Uint8Array(signed.length + extra.length);
    tampered.set(signed);
    tampered.set(extra, signed.length);
    tampered[3] = tampered.length - 20;
    const decoded = decodeStunMessage(tampered);
    expect(findAttribute(decoded, StunAttributeType.Data)).toBeUndefined();
    expect(findAttribute(decoded, StunAttributeType.Lifetime)).toBeDefined();
    expect(verifyMessageIntegrity(tampered, key)).toBe(true);
  });
});

describe('demultiplexing against WireGuard', () => {
  it('isStunMessage is false for every WireGuard message shape (bytes 1..3 are zero)', () => {
    for (const [type, size] of [
      [1, MESSAGE_INITIATION_SIZE],
      [2, MESSAGE_RESPONSE_SIZE],
      [3, MESSAGE_COOKIE_REPLY_SIZE],
      [4, 32],
      [4, 48],
      [4, 1452],
    ] as const) {
      for (const fill of [0x00, 0x21, 0xa5, 0xff]) {
        const message = new Uint8Array(size).fill(fill);
        message[0] = type;
        message[1] = message[2] = message[3] = 0;
        // Even with a magic cookie planted at bytes 4..7 the length field (0) cannot match the size.
        message.set([0x21, 0x12, 0xa4, 0x42], 4);
        expect(isStunMessage(message), `WireGuard type ${type}, ${size} bytes`).toBe(false);
      }
    }
  });

  it('isStunMessage rejects wrong top bits, cookie, length parity and size mismatch', () => {
    const good = encodeStunMessage({ type: StunMessageType.BindingRequest, transactionId: newTransactionId(), attributes: [] }, { fingerprint: true });
    expect(isStunMessage(good)).toBe(true);
    const mutate = (change: (b: Uint8Array) => void): Uint8Array => {
      const b = new Uint8Array(good);
      change(b);
      return b;
    };
    expect(isStunMessage(mutate((b) => (b[0] = 0x40)))).toBe(false);
    expect(isStunMessage(mutate((b) => (b[0] = 0x80)))).toBe(false);
    expect(isStunMessage(mutate((b) => (b[5] = 0x13)))).toBe(false);
    expect(isStunMessage(mutate((b) => (b[3] = 7)))).toBe(false);
    expect(isStunMessage(good.subarray(0, good.length - 4))).toBe(false);
    expect(isStunMessage(good.subarray(0, 19))).toBe(false);
  });
});

describe('error paths throw StunError naming the problem', () => {
  const good = encodeStunMessage(
    { type: StunMessageType.BindingSuccess, transactionId: newTransactionId(), attributes: [encodeTextAttribute(StunAttributeType.Software, 'abc')] },
    { fingerprint: true },
  );
  const mutate = (change: (b: Uint8Array) => void): Uint8Array => {
    const b = new Uint8Array(good);
    change(b);
    return b;
  };

  it('decodeStunMessage', () => {
    expectStunError(() => decodeStunMessage(good.subarray(0, 19)), /19 bytes is shorter than the 20-byte header/);
    expectStunError(() => decodeStunMessage(mutate((b) => (b[0]! |= 0x80))), /first two bits are not zero/);
    expectStunError(() => decodeStunMessage(mutate((b) => (b[4] = 0))), /magic cookie is 0x0012a442/);
    expectStunError(() => decodeStunMessage(mutate((b) => (b[3]! += 2))), /length .* is not a multiple of 4/);
    expectStunError(() => decodeStunMessage(good.subarray(0, good.length - 4)), /length field says 16 bytes .* but 12 follow/);
    expectStunError(() => decodeStunMessage(mutate((b) => (b[23] = 40))), /attribute 0x8022 at offset 20 claims 40 bytes but only 12 remain/);
    expectStunError(() => decodeStunMessage(mutate((b) => (b[good.length - 1]! ^= 1))), /FINGERPRINT mismatch/);
    // FINGERPRINT somewhere other than last
    const notLast = encodeStunMessage({
      type: StunMessageType.BindingSuccess,
      transactionId: newTransactionId(),
      attributes: [
        { type: StunAttributeType.Fingerprint, value: new Uint8Array(4) },
        encodeTextAttribute(StunAttributeType.Software, 'x'),
      ],
    });
    expectStunError(() => decodeStunMessage(notLast), /FINGERPRINT at offset 20 is not the last attribute/);
    const shortIntegrity = encodeStunMessage({
      type: StunMessageType.BindingSuccess,
      transactionId: newTransactionId(),
      attributes: [{ type: StunAttributeType.MessageIntegrity, value: new Uint8Array(8) }],
    });
    expectStunError(() => decodeStunMessage(shortIntegrity), /MESSAGE-INTEGRITY is 8 bytes, expected 20/);
  });

  it('encodeStunMessage', () => {
    expectStunError(() => encodeStunMessage({ type: 0x4000, transactionId: newTransactionId(), attributes: [] }), /type 16384 does not fit in 14 bits/);
    expectStunError(() => encodeStunMessage({ type: 1, transactionId: new Uint8Array(11), attributes: [] }), /transaction id must be 12 bytes, got 11/);
    expectStunError(
      () => encodeStunMessage({ type: 1, transactionId: newTransactionId(), attributes: [{ type: 0x10000, value: new Uint8Array(0) }] }),
      /attribute type 65536 does not fit/,
    );
    expectStunError(
      () => encodeStunMessage({ type: 1, transactionId: newTransactionId(), attributes: [{ type: 1, value: new Uint8Array(0x10000) }] }),
      /attribute 0x0001 value is 65536 bytes/,
    );
    expectStunError(
      () =>
        encodeStunMessage({
          type: 1,
          transactionId: newTransactionId(),
          attributes: [
            { type: 1, value: new Uint8Array(0xfff0) },
            { type: 2, value: new Uint8Array(16) },
          ],
        }),
      /body of 65544 bytes is longer than 65535/,
    );
  });

  it('addresses', () => {
    const id = newTransactionId();
    expectStunError(() => decodeXorAddress(new Uint8Array(3), id), /3 bytes, too short/);
    expectStunError(() => decodeXorAddress(fromHex('0003000001020304'), id), /unknown address family 0x03/);
    expectStunError(() => decodeXorAddress(fromHex('00010000010203'), id), /IPv4 must be 8 bytes, got 7/);
    expectStunError(() => decodeMappedAddress(fromHex('0002000001020304')), /MAPPED-ADDRESS for IPv6 must be 20 bytes, got 8/);
    expectStunError(() => decodeXorAddress(fromHex('0001000001020304'), new Uint8Array(3)), /transaction id must be 12 bytes, got 3/);
    expectStunError(() => encodeXorAddress({ family: 4, address: '::1', port: 1 }, id), /'::1' is not an IPv4 address/);
    expectStunError(() => encodeXorAddress({ family: 4, address: 'nope', port: 1 }, id), /'nope' is not an IP address/);
    expectStunError(() => encodeMappedAddress({ family: 4, address: '1.2.3.4', port: 70000 }), /port 70000 is not 0..65535/);
  });

  it('ERROR-CODE', () => {
    expectStunError(() => decodeErrorCode(new Uint8Array(3)), /3 bytes, too short/);
    expectStunError(() => decodeErrorCode(fromHex('00000200')), /class 2 and number 0/);
    expectStunError(() => decodeErrorCode(fromHex('00000464')), /class 4 and number 100/);
    expectStunError(() => encodeErrorCode(200), /error code 200 is not in 300..699/);
  });

  it('verifyMessageIntegrity is false, not a throw, for absent or malformed input', () => {
    expect(verifyMessageIntegrity(good, utf8('k'))).toBe(false);
    expect(verifyMessageIntegrity(new Uint8Array(5), utf8('k'))).toBe(false);
    expect(verifyMessageIntegrity(RFC5769_REQUEST.subarray(0, 40), RFC5769_SHORT_TERM_PASSWORD)).toBe(false);
  });
});
