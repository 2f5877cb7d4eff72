/**
 * Fuzz tests for the STUN codec and the STUN client's receive path.
 *
 * 1. Codec: random bytes, header-valid random attribute soup, and 1–3
 *    mutations (bit flips, truncation, extension, inserted/deleted bytes,
 *    lying message and attribute length fields) of valid messages go into
 *    decodeStunMessage and the attribute decoders. The only thing allowed to
 *    escape is StunError; isStunMessage and verifyMessageIntegrity never
 *    throw; whatever decodes is consistent with isStunMessage.
 * 2. Client: the same kind of datagrams, most built from a valid response
 *    to the client's pending request (so they carry its transaction id and
 *    reach the deep paths), go into a StunClient's port subscriber from the
 *    server's address or elsewhere. The subscriber never throws and never
 *    hits its "unexpected error" path; a mutated response that is still a
 *    valid answer may legitimately settle the request (STUN Binding has no
 *    integrity), in which case a new one is started; at the end the pending
 *    request completes with the genuine answer.
 *
 * Inputs come from a seeded PRNG (FUZZ_SEED=<n> reproduces a run; the seed
 * is printed and in every failure message).
 */
import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../src/device/addr.js';
import type { DatagramPort, DatagramSubscriber } from '../../src/nat/datagram-port.js';
import { StunAttributeType, StunClass, StunMessageType, StunMethod, stunMessageType } from '../../src/nat/stun/constants.js';
import { StunClient } from '../../src/nat/stun/client.js';
import {
  StunError,
  decodeErrorCode,
  decodeMappedAddress,
  decodeStunMessage,
  decodeXorAddress,
  encodeErrorCode,
  encodeMappedAddress,
  encodeStunMessage,
  encodeTextAttribute,
  encodeXorAddress,
  isStunMessage,
  longTermKey,
  verifyMessageIntegrity,
  type StunAttribute,
} from '../../src/nat/stun/message.js';
import { Rng, fuzzSeed, mutate, present, shortHex } from '../helpers/fuzz.js';

const SEED = fuzzSeed();
const CODEC_ITERATIONS = 30_000;
const CLIENT_ITERATIONS = 20_000;
const SERVER: Endpoint = { family: 4, address: '192.0.2.10', port: 3478 };
const GENUINE: Endpoint = { family: 6, address: '2001:db8::77', port: 61000 };
const KEY = longTermKey('user', 'realm', 'pass');

/** RFC 5769 §2.2, for a seed with the RFC's own padding. */
const RFC5769_IPV4_RESPONSE = new Uint8Array(
  Buffer.from(
    '0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96',
    'hex',
  ),
);

function seedMessages(rng: Rng): Uint8Array[] {
  const id = (): Uint8Array => rng.bytes(12);
  const corpus: Uint8Array[] = [RFC5769_IPV4_RESPONSE];
  const txid = id();
  corpus.push(encodeStunMessage({ type: StunMessageType.BindingRequest, transactionId: id(), attributes: [] }, { fingerprint: true }));
  corpus.push(
    encodeStunMessage(
      {
        type: StunMessageType.BindingSuccess,
        transactionId: txid,
        attributes: [
          { type: StunAttributeType.XorMappedAddress, value: encodeXorAddress(GENUINE, txid) },
          { type: StunAttributeType.MappedAddress, value: encodeMappedAddress({ family: 4, address: '198.51.100.1', port: 9 }) },
          encodeTextAttribute(StunAttributeType.Software, 'fuzz'),
        ],
      },
      { integrityKey: KEY, fingerprint: true },
    ),
  );
  corpus.push(
    encodeStunMessage(
      {
        type: stunMessageType(StunMethod.Allocate, StunClass.ErrorResponse),
        transactionId: id(),
        attributes: [
          { type: StunAttributeType.ErrorCode, value: encodeErrorCode(401, 'Unauthorized') },
          encodeTextAttribute(StunAttributeType.Realm, 'example.org'),
          encodeTextAttribute(StunAttributeType.Nonce, 'abcdefgh'),
        ],
      },
      { fingerprint: true },
    ),
  );
  const allocateId = id();
  corpus.push(
    encodeStunMessage(
      {
        type: stunMessageType(StunMethod.Allocate, StunClass.SuccessResponse),
        transactionId: allocateId,
        attributes: [
          { type: StunAttributeType.XorRelayedAddress, value: encodeXorAddress({ family: 4, address: '203.0.113.5', port: 50000 }, allocateId) },
          { type: StunAttributeType.Lifetime, value: new Uint8Array([0, 0, 0x02, 0x58]) },
          { type: StunAttributeType.Data, value: rng.bytes(37) },
        ],
      },
      { integrityKey: KEY },
    ),
  );
  return corpus;
}

/** A STUN header with a correct length field and cookie, then random attribute-shaped bytes. */
function headerValidSoup(rng: Rng): Uint8Array {
  const attributes: StunAttribute[] = [];
  const count = rng.int(6);
  for (let i = 0; i < count; i++) {
    const type = rng.pick([
      StunAttributeType.XorMappedAddress,
      StunAttributeType.MappedAddress,
      StunAttributeType.ErrorCode,
      StunAttributeType.MessageIntegrity,
      StunAttributeType.Fingerprint,
      StunAttributeType.Software,
      rng.int(0x10000),
    ]);
    attributes.push({ type, value: rng.bytes(rng.pick([0, 1, 4, 8, 20, rng.int(64)])) });
  }
  return encodeStunMessage({ type: rng.int(0x4000), transactionId: rng.bytes(12), attributes }, { fingerprint: rng.chance(0.3) });
}

/** Rewrite the message length field, or one attribute length field, with a lie. */
function lieAboutLength(rng: Rng, input: Uint8Array): Uint8Array {
  const out = new Uint8Array(input);
  if (out.length < 20) return out;
  if (rng.chance(0.5) || out.length < 24) {
    const actual = (out[2]! << 8) | out[3]!;
    const lie = rng.pick([0, actual + 4, actual - 4, actual + 1, rng.int(0x10000), 0xffff]) & 0xffff;
    out[2] = lie >> 8;
    out[3] = lie & 0xff;
  } else {
    // Find an attribute header by walking (stopping at the first that overruns).
    const offsets: number[] = [];
    for (let at = 20; at + 4 <= out.length; ) {
      offsets.push(at);
      at += 4 + ((((out[at + 2]! << 8) | out[at + 3]!) + 3) & ~3);
    }
    const at = rng.pick(offsets);
    const lie = rng.pick([0, 1, 3, 0xffff, rng.int(0x10000), ((out[at + 2]! << 8) | out[at + 3]!) + rng.range(1, 8)]) & 0xffff;
    out[at + 2] = lie >> 8;
    out[at + 3] = lie & 0xff;
  }
  return out;
}

function candidate(rng: Rng, corpus: readonly Uint8Array[]): Uint8Array {
  const kind = rng.int(10);
  if (kind === 0) return rng.bytes(rng.int(120));
  if (kind === 1) return headerValidSoup(rng);
  if (kind === 2) return lieAboutLength(rng, rng.pick(corpus));
  if (kind === 3) {
    const seed = rng.pick(corpus);
    return seed.slice(0, rng.int(seed.length));
  }
  return mutate(rng, rng.pick(corpus), { fields: [{ offset: 2, length: 2 }, { offset: 8, length: 12 }], maxLength: 2000 });
}

/** Half the time flip bytes in place (the length still matches, so the datagram reaches the decoder), else any mutation or a length lie. */
function mutateForClient(rng: Rng, base: Uint8Array): Uint8Array {
  const kind = rng.int(10);
  if (kind < 5) {
    const out = new Uint8Array(base);
    for (let k = rng.range(1, 3); k > 0; k--) out[rng.range(20, out.length - 1)]! ^= rng.range(1, 255);
    return out;
  }
  if (kind === 5) return lieAboutLength(rng, base);
  return mutate(rng, base, { fields: [{ offset: 2, length: 2 }], maxLength: 2000 });
}

function onlyStunError(action: () => unknown, what: string, input: Uint8Array): void {
  try {
    action();
  } catch (error) {
    if (!(error instanceof StunError)) {
      throw new Error(`${what} threw ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)} (FUZZ_SEED=${SEED}) on ${shortHex(input)}`);
    }
  }
}

describe(`STUN fuzz (FUZZ_SEED=${SEED})`, () => {
  it(`the codec throws nothing but StunError on ${CODEC_ITERATIONS} random and mutated inputs`, () => {
    console.log(`STUN fuzz seed ${SEED}`);
    const rng = new Rng(SEED);
    const corpus = seedMessages(rng);
    let decoded = 0;
    for (let i = 0; i < CODEC_ITERATIONS; i++) {
      const input = present(rng, candidate(rng, corpus));
      const looksLikeStun = isStunMessage(input);
      let ok = false;
      onlyStunError(
        () => {
          const message = decodeStunMessage(input);
          ok = true;
          for (const attribute of message.attributes) {
            expect(attribute.value.length).toBeLessThanOrEqual(input.length);
            onlyStunError(() => decodeXorAddress(attribute.value, message.transactionId), 'decodeXorAddress', input);
            onlyStunError(() => decodeMappedAddress(attribute.value), 'decodeMappedAddress', input);
            onlyStunError(() => decodeErrorCode(attribute.value), 'decodeErrorCode', input);
          }
        },
        'decodeStunMessage',
        input,
      );
      if (ok) decoded++;
      // Whatever decodes passes the demultiplexing check (the converse need not hold: FINGERPRINT, framing).
      if (ok && !looksLikeStun) throw new Error(`decoded but isStunMessage is false (FUZZ_SEED=${SEED}): ${shortHex(input)}`);
      expect(typeof verifyMessageIntegrity(input, KEY)).toBe('boolean');
    }
    // The mix must exercise both outcomes, or it tests nothing.
    expect(decoded).toBeGreaterThan(CODEC_ITERATIONS / 50);
    expect(decoded).toBeLessThan(CODEC_ITERATIONS);
  });

  it(`the client subscriber never throws on ${CLIENT_ITERATIONS} datagrams, and the pending request still completes`, async () => {
    const rng = new Rng(SEED ^ 0x5a5a5a5a);
    let subscriber: DatagramSubscriber | null = null;
    const sent: Uint8Array[] = [];
    const port: DatagramPort = {
      localPort: 40000,
      send: async (datagram) => {
        sent.push(new Uint8Array(datagram));
      },
      subscribe: (s) => {
        subscriber = s;
        return () => (subscriber = null);
      },
    };
    const errors: string[] = [];
    const client = new StunClient(port, { rtoMs: 60_000, log: { verbose: () => undefined, error: (m) => errors.push(m) } });
    const corpus = seedMessages(rng);

    let settledEarly = 0;
    let consumed = 0;
    let pending: { promise: Promise<unknown>; settled: boolean; request: Uint8Array } | null = null;
    const startRequest = async (): Promise<void> => {
      const before = sent.length;
      const state: { promise: Promise<unknown>; settled: boolean; request: Uint8Array } = { promise: client.binding(SERVER), settled: false, request: new Uint8Array() };
      state.promise.then(
        () => (state.settled = true),
        () => (state.settled = true),
      );
      while (sent.length === before) await new Promise((resolve) => setImmediate(resolve));
      state.request = sent[sent.length - 1]!;
      pending = state;
    };
    const genuineAnswer = (request: Uint8Array): Uint8Array => {
      const { transactionId } = decodeStunMessage(request);
      return encodeStunMessage(
        {
          type: StunMessageType.BindingSuccess,
          transactionId,
          attributes: [{ type: StunAttributeType.XorMappedAddress, value: encodeXorAddress(GENUINE, transactionId) }, encodeTextAttribute(StunAttributeType.Software, 'srv')],
        },
        { fingerprint: rng.chance(0.5) },
      );
    };

    await startRequest();
    for (let i = 0; i < CLIENT_ITERATIONS; i++) {
      // Let a settled request's callbacks run, and replace it, so every datagram meets a live transaction.
      await new Promise((resolve) => setImmediate(resolve));
      if (pending!.settled) {
        settledEarly++;
        await startRequest();
      }
      // Mostly mutations of a valid answer to the pending request (its transaction id), sometimes anything.
      const base = rng.chance(0.7) ? genuineAnswer(pending!.request) : candidate(rng, corpus);
      const input = present(rng, mutateForClient(rng, base));
      const from: Endpoint = rng.chance(0.85) ? SERVER : rng.pick([{ ...SERVER, port: 3479 }, { family: 4, address: '192.0.2.11', port: 3478 }, { family: 6, address: '::ffff:c000:20a', port: 3478 }]);
      let result: boolean;
      try {
        result = subscriber!(input, from);
      } catch (error) {
        throw new Error(`the STUN client subscriber threw ${String(error)} (FUZZ_SEED=${SEED}) on ${shortHex(input)}`);
      }
      expect(typeof result).toBe('boolean');
      if (result) consumed++;
    }
    await new Promise((resolve) => setImmediate(resolve));
    if (pending!.settled) await startRequest();
    const last: { promise: Promise<unknown>; request: Uint8Array } = pending!;
    expect(subscriber!(genuineAnswer(last.request), SERVER)).toBe(true);
    const result = (await last.promise) as { mapped: Endpoint };
    expect(result.mapped).toEqual(GENUINE);
    expect(errors, `unexpected-error log lines (FUZZ_SEED=${SEED})`).toEqual([]);
    expect(consumed).toBeGreaterThan(CLIENT_ITERATIONS / 10);
    console.log(`STUN client fuzz: ${consumed} consumed, ${settledEarly} requests settled early by still-valid mutations`);
    client.close();
  });
});
