/**
 * The four message codecs (WireGuard paper §5.4; wireguard-go messages in
 * noise-protocol.go): exact layouts, little-endian fields, strict lengths,
 * type byte and zero reserved bytes.
 */
import { describe, expect, it } from 'vitest';
import {
  MAX_MESSAGE_SIZE,
  MESSAGE_COOKIE_REPLY_SIZE,
  MESSAGE_INITIATION_SIZE,
  MESSAGE_RESPONSE_SIZE,
  MESSAGE_TRANSPORT_HEADER_SIZE,
  MESSAGE_TRANSPORT_MIN_SIZE,
} from '../../src/noise/constants.js';
import {
  INITIATION_MAC1_OFFSET,
  RESPONSE_MAC1_OFFSET,
  messageType,
  parseCookieReply,
  parseInitiation,
  parseResponse,
  parseTransportHeader,
  serializeCookieReply,
  serializeInitiation,
  serializeResponse,
  serializeTransport,
  type CookieReply,
  type HandshakeInitiation,
  type HandshakeResponse,
} from '../../src/noise/messages.js';
import { Rng } from '../helpers/fuzz.js';
import { hex, makePair, only } from '../helpers/handshake-fixtures.js';

const rng = new Rng(0xc0dec);

function sampleInitiation(): HandshakeInitiation {
  return {
    sender: rng.u32(),
    ephemeral: rng.bytes(32),
    encryptedStatic: rng.bytes(48),
    encryptedTimestamp: rng.bytes(28),
    mac1: rng.bytes(16),
    mac2: rng.bytes(16),
  };
}

function sampleResponse(): HandshakeResponse {
  return {
    sender: rng.u32(),
    receiver: rng.u32(),
    ephemeral: rng.bytes(32),
    encryptedNothing: rng.bytes(16),
    mac1: rng.bytes(16),
    mac2: rng.bytes(16),
  };
}

function sampleCookieReply(): CookieReply {
  return { receiver: rng.u32(), nonce: rng.bytes(24), encryptedCookie: rng.bytes(32) };
}

function le32(n: number): string | null {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return hex(b);
}

function le64(n: bigint): string | null {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n, true);
  return hex(b);
}

/** Every fields' hex, so parsed views and originals compare by value. */
function fieldsHex(m: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v instanceof Uint8Array ? hex(v) : v]));
}

const ALL_PARSERS = [
  ['initiation', parseInitiation],
  ['response', parseResponse],
  ['cookie-reply', parseCookieReply],
  ['transport', parseTransportHeader],
] as const;

function validSamples(): Record<(typeof ALL_PARSERS)[number][0], Uint8Array> {
  return {
    initiation: serializeInitiation(sampleInitiation()),
    response: serializeResponse(sampleResponse()),
    'cookie-reply': serializeCookieReply(sampleCookieReply()),
    transport: serializeTransport(rng.u32(), 7n, rng.bytes(48)),
  };
}

describe('sizes and offsets', () => {
  it('match the paper', () => {
    expect(MESSAGE_INITIATION_SIZE).toBe(148);
    expect(MESSAGE_RESPONSE_SIZE).toBe(92);
    expect(MESSAGE_COOKIE_REPLY_SIZE).toBe(64);
    expect(MESSAGE_TRANSPORT_HEADER_SIZE).toBe(16);
    expect(MESSAGE_TRANSPORT_MIN_SIZE).toBe(32);
    expect(MAX_MESSAGE_SIZE).toBe(65_535);
    expect(INITIATION_MAC1_OFFSET).toBe(116);
    expect(RESPONSE_MAC1_OFFSET).toBe(60);
  });
});

describe('handshake initiation', () => {
  it('round-trips and has the documented layout', () => {
    for (let i = 0; i < 20; i++) {
      const m = sampleInitiation();
      const bytes = serializeInitiation(m);
      expect(bytes.length).toBe(148);
      expect(hex(bytes.subarray(0, 4))).toBe('01000000');
      expect(hex(bytes.subarray(4, 8))).toBe(le32(m.sender));
      expect(hex(bytes.subarray(8, 40))).toBe(hex(m.ephemeral));
      expect(hex(bytes.subarray(40, 88))).toBe(hex(m.encryptedStatic));
      expect(hex(bytes.subarray(88, 116))).toBe(hex(m.encryptedTimestamp));
      expect(hex(bytes.subarray(116, 132))).toBe(hex(m.mac1));
      expect(hex(bytes.subarray(132, 148))).toBe(hex(m.mac2));
      const parsed = parseInitiation(bytes)!;
      expect(fieldsHex(parsed)).toEqual(fieldsHex(m));
      expect(hex(serializeInitiation(parsed))).toBe(hex(bytes));
      expect(messageType(bytes)).toBe('initiation');
    }
  });

  it('handles the extreme sender indices', () => {
    for (const sender of [0, 1, 0x7fffffff, 0x80000000, 0xffffffff]) {
      const parsed = parseInitiation(serializeInitiation({ ...sampleInitiation(), sender }))!;
      expect(parsed.sender).toBe(sender);
    }
  });

  it('parses a message that sits at an offset inside a larger buffer; fields are views', () => {
    const m = sampleInitiation();
    const big = new Uint8Array(300);
    big.set(serializeInitiation(m), 77);
    const slice = big.subarray(77, 77 + 148);
    const parsed = parseInitiation(slice)!;
    expect(fieldsHex(parsed)).toEqual(fieldsHex(m));
    big[77 + 8] = big[77 + 8]! ^ 0xff;
    expect(parsed.ephemeral[0]).toBe(big[77 + 8]);
  });

  it('is exactly 148 bytes', () => {
    const bytes = serializeInitiation(sampleInitiation());
    for (const length of [0, 4, 147, 149, 150, 296]) {
      const b = new Uint8Array(length);
      b.set(bytes.subarray(0, Math.min(length, 148)));
      expect(parseInitiation(b), `length ${length}`).toBeNull();
      expect(messageType(b)).toBeNull();
    }
  });
});

describe('handshake response', () => {
  it('round-trips and has the documented layout', () => {
    for (let i = 0; i < 20; i++) {
      const m = sampleResponse();
      const bytes = serializeResponse(m);
      expect(bytes.length).toBe(92);
      expect(hex(bytes.subarray(0, 4))).toBe('02000000');
      expect(hex(bytes.subarray(4, 8))).toBe(le32(m.sender));
      expect(hex(bytes.subarray(8, 12))).toBe(le32(m.receiver));
      expect(hex(bytes.subarray(12, 44))).toBe(hex(m.ephemeral));
      expect(hex(bytes.subarray(44, 60))).toBe(hex(m.encryptedNothing));
      expect(hex(bytes.subarray(60, 76))).toBe(hex(m.mac1));
      expect(hex(bytes.subarray(76, 92))).toBe(hex(m.mac2));
      const parsed = parseResponse(bytes)!;
      expect(fieldsHex(parsed)).toEqual(fieldsHex(m));
      expect(hex(serializeResponse(parsed))).toBe(hex(bytes));
      expect(messageType(bytes)).toBe('response');
    }
  });

  it('is exactly 92 bytes', () => {
    const bytes = serializeResponse(sampleResponse());
    for (const length of [0, 91, 93, 148]) {
      const b = new Uint8Array(length);
      b.set(bytes.subarray(0, Math.min(length, 92)));
      expect(parseResponse(b), `length ${length}`).toBeNull();
      expect(messageType(b)).toBeNull();
    }
  });
});

describe('cookie reply', () => {
  it('round-trips and has the documented layout', () => {
    for (let i = 0; i < 20; i++) {
      const m = sampleCookieReply();
      const bytes = serializeCookieReply(m);
      expect(bytes.length).toBe(64);
      expect(hex(bytes.subarray(0, 4))).toBe('03000000');
      expect(hex(bytes.subarray(4, 8))).toBe(le32(m.receiver));
      expect(hex(bytes.subarray(8, 32))).toBe(hex(m.nonce));
      expect(hex(bytes.subarray(32, 64))).toBe(hex(m.encryptedCookie));
      const parsed = parseCookieReply(bytes)!;
      expect(fieldsHex(parsed)).toEqual(fieldsHex(m));
      expect(hex(serializeCookieReply(parsed))).toBe(hex(bytes));
      expect(messageType(bytes)).toBe('cookie-reply');
    }
  });

  it('is exactly 64 bytes', () => {
    const bytes = serializeCookieReply(sampleCookieReply());
    for (const length of [0, 63, 65, 128]) {
      const b = new Uint8Array(length);
      b.set(bytes.subarray(0, Math.min(length, 64)));
      expect(parseCookieReply(b), `length ${length}`).toBeNull();
      expect(messageType(b)).toBeNull();
    }
  });
});

describe('transport', () => {
  it('round-trips receiver, 64-bit little-endian counter and ciphertext', () => {
    for (const counter of [0n, 1n, 255n, 256n, 0x0102030405060708n, (1n << 63n) + 5n, (1n << 64n) - 1n]) {
      const receiver = rng.u32();
      const ciphertext = rng.bytes(16 + rng.int(100));
      const bytes = serializeTransport(receiver, counter, ciphertext);
      expect(bytes.length).toBe(16 + ciphertext.length);
      expect(hex(bytes.subarray(0, 4))).toBe('04000000');
      expect(hex(bytes.subarray(4, 8))).toBe(le32(receiver));
      expect(hex(bytes.subarray(8, 16))).toBe(le64(counter));
      const parsed = parseTransportHeader(bytes)!;
      expect(parsed.receiver).toBe(receiver);
      expect(parsed.counter).toBe(counter);
      expect(hex(parsed.ciphertext)).toBe(hex(ciphertext));
      expect(hex(serializeTransport(parsed.receiver, parsed.counter, parsed.ciphertext))).toBe(hex(bytes));
      expect(messageType(bytes)).toBe('transport');
    }
  });

  it('is at least 32 bytes (a keepalive) and at most 65535', () => {
    for (const [length, ok] of [
      [4, false],
      [16, false],
      [31, false],
      [32, true],
      [33, true],
      [1500, true],
      [65_535, true],
      [65_536, false],
      [70_000, false],
    ] as const) {
      const b = new Uint8Array(length);
      b[0] = 4;
      expect(parseTransportHeader(b) !== null, `length ${length}`).toBe(ok);
      expect(messageType(b), `length ${length}`).toBe(ok ? 'transport' : null);
    }
  });

  it('parses at an offset inside a larger buffer', () => {
    const bytes = serializeTransport(0xdeadbeef, 0x1122334455667788n, rng.bytes(40));
    const big = new Uint8Array(bytes.length + 13);
    big.set(bytes, 13);
    const parsed = parseTransportHeader(big.subarray(13))!;
    expect(parsed.receiver).toBe(0xdeadbeef);
    expect(parsed.counter).toBe(0x1122334455667788n);
    expect(parsed.ciphertext.length).toBe(40);
  });
});

describe('type byte and reserved bytes', () => {
  it('each parser refuses the other types', () => {
    const samples = validSamples();
    for (const [name, parse] of ALL_PARSERS) {
      for (const [other, bytes] of Object.entries(samples)) {
        const parsed = (parse as (b: Uint8Array) => unknown)(bytes);
        if (other === name) expect(parsed, `${name} of ${other}`).not.toBeNull();
        else expect(parsed, `${name} of ${other}`).toBeNull();
      }
    }
  });

  it('a message of the right length with another type byte is refused', () => {
    const samples = validSamples();
    for (const [name, parse] of ALL_PARSERS) {
      for (const type of [0, 1, 2, 3, 4, 5, 0x41, 0xff]) {
        const b = Uint8Array.from(samples[name]);
        const own = b[0];
        if (type === own) continue;
        b[0] = type;
        expect((parse as (b: Uint8Array) => unknown)(b), `${name} with type ${type}`).toBeNull();
      }
    }
  });

  it('non-zero reserved bytes make every message invalid', () => {
    const samples = validSamples();
    for (const [name, parse] of ALL_PARSERS) {
      for (const at of [1, 2, 3]) {
        for (const value of [1, 0x80, 0xff]) {
          const b = Uint8Array.from(samples[name]);
          b[at] = value;
          expect((parse as (b: Uint8Array) => unknown)(b), `${name} byte ${at}=${value}`).toBeNull();
          expect(messageType(b)).toBeNull();
        }
      }
    }
  });
});

describe('messageType', () => {
  it('classifies by type byte and exact length', () => {
    const cases: Array<[Uint8Array, string | null]> = [
      [new Uint8Array(0), null],
      [Uint8Array.of(1), null],
      [Uint8Array.of(1, 0, 0), null],
      [Uint8Array.of(4, 0, 0, 0), null],
      [new Uint8Array(148), null], // type 0
      [Uint8Array.from({ length: 148 }, (_, i) => (i === 0 ? 1 : 0)), 'initiation'],
      [Uint8Array.from({ length: 92 }, (_, i) => (i === 0 ? 2 : 0)), 'response'],
      [Uint8Array.from({ length: 64 }, (_, i) => (i === 0 ? 3 : 0)), 'cookie-reply'],
      [Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 4 : 0)), 'transport'],
      [Uint8Array.from({ length: 148 }, (_, i) => (i === 0 ? 5 : 0)), null],
      [Uint8Array.from({ length: 148 }, (_, i) => (i === 0 ? 2 : 0)), null],
      [Uint8Array.from({ length: 92 }, (_, i) => (i === 0 ? 1 : 0)), null],
      [Uint8Array.from({ length: 148 }, (_, i) => (i === 0 ? 4 : 0)), 'transport'],
    ];
    for (const [bytes, want] of cases) expect(messageType(bytes), `${bytes.length} bytes type ${bytes[0]}`).toBe(want);
  });

  it('classifies what real tunnels send', () => {
    const { a, b } = makePair();
    const init = only(a.initiateHandshake().network);
    expect(messageType(init)).toBe('initiation');
    const response = only(b.decapsulate(init).network);
    expect(messageType(response)).toBe('response');
    const keepalive = only(a.decapsulate(response).network);
    expect(messageType(keepalive)).toBe('transport');
    expect(keepalive.length).toBe(32);
    const reply = b.decapsulate(only(makePair({ identityB: b.identity }).a.initiateHandshake().network), {
      underLoad: true,
      source: Uint8Array.of(1, 2, 3, 4),
    }).cookieReply;
    expect(reply).not.toBeNull();
    expect(messageType(reply!)).toBe('cookie-reply');
  });
});
