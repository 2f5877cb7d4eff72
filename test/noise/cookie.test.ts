/**
 * MAC1, MAC2 and cookie replies (WireGuard paper §5.4.4, §5.4.7;
 * wireguard-go device/cookie.go and the handshake branch of receive.go).
 *
 * The cookie in a reply is opened here independently with @noble's
 * XChaCha20-Poly1305 under HASH("cookie--" || responder key), with the MAC1
 * of the message that provoked it as associated data, and MAC2 is
 * recomputed from it with keyed BLAKE2s.
 */
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { blake2s } from '@noble/hashes/blake2.js';
import { describe, expect, it } from 'vitest';
import { COOKIE_REFRESH_TIME_MS, HANDSHAKE_INITIATION_RATE_MS, MESSAGE_COOKIE_REPLY_SIZE, REKEY_TIMEOUT_MS } from '../../src/noise/constants.js';
import { CookieGenerator } from '../../src/noise/cookie.js';
import { messageType, parseCookieReply, parseInitiation, parseResponse } from '../../src/noise/messages.js';
import { nodeBackend } from '../../src/noise/node-backend.js';
import { ascii, errorCode, flipBit, hex, makePair, only } from '../helpers/handshake-fixtures.js';

const SOURCE = Uint8Array.of(192, 0, 2, 1, 0xca, 0x6c); // 192.0.2.1:51820
const OTHER_SOURCE = Uint8Array.of(192, 0, 2, 2, 0xca, 0x6c);
const ZERO_MAC = '00'.repeat(16);

function mac2Of(message: Uint8Array): string | null {
  const at = message[0] === 1 ? 132 : 76;
  return hex(message.subarray(at, at + 16));
}

/** Open a cookie reply as the initiator would, independently of src/. */
function openCookie(reply: Uint8Array, responderPublic: Uint8Array, provokingMessage: Uint8Array): Uint8Array | null {
  const mac1At = provokingMessage[0] === 1 ? 116 : 60;
  const key = blake2s(new Uint8Array([...ascii('cookie--'), ...responderPublic]));
  try {
    return xchacha20poly1305(key, reply.subarray(8, 32), provokingMessage.subarray(mac1At, mac1At + 16)).decrypt(reply.subarray(32, 64));
  } catch {
    return null;
  }
}

function expectedMac2(cookie: Uint8Array, message: Uint8Array): string | null {
  const at = message[0] === 1 ? 132 : 76;
  return hex(blake2s(message.subarray(0, at), { key: cookie, dkLen: 16 }));
}

describe('cookie replies under load', () => {
  it('an initiation without MAC2 gets a cookie reply; the next initiation carries MAC2 and is accepted from the same source only', () => {
    const { a, b, clock, idB } = makePair();
    const init1 = only(a.encapsulate(ascii('staged while handshaking')).network);
    expect(mac2Of(init1)).toBe(ZERO_MAC);

    const refused = b.decapsulate(init1, { underLoad: true, source: SOURCE });
    expect(errorCode(refused)).toBe('CookieRequired');
    expect(refused.network).toEqual([]);
    expect(refused.authenticated).toBe(false);
    expect(refused.tunnel).toBeNull();
    const reply = refused.cookieReply!;
    expect(reply).not.toBeNull();
    expect(reply.length).toBe(MESSAGE_COOKIE_REPLY_SIZE);
    expect(reply.length).toBe(64);
    expect(reply[0]).toBe(3);
    expect(hex(reply.subarray(1, 4))).toBe('000000');
    expect(messageType(reply)).toBe('cookie-reply');
    expect(parseCookieReply(reply)!.receiver).toBe(parseInitiation(init1)!.sender);
    // Nothing was consumed.
    expect(b.handshake.state).toBe('zeroed');
    expect(b.handshake.lastTimestamp).toBeNull();
    expect(b.keypairs.next).toBeNull();

    const cookie = openCookie(reply, idB.publicKey, init1);
    expect(cookie).not.toBeNull();
    expect(cookie!.length).toBe(16);

    // The initiator takes the cookie; nothing is sent in answer.
    const took = a.decapsulate(reply);
    expect(took.error).toBeNull();
    expect(took.network).toEqual([]);
    expect(took.cookieReply).toBeNull();

    // Its next initiation (the REKEY_TIMEOUT retransmission) carries MAC2 = MAC(cookie, message up to MAC2).
    clock.advance(REKEY_TIMEOUT_MS);
    const init2 = only(a.updateTimers().network);
    expect(messageType(init2)).toBe('initiation');
    expect(mac2Of(init2)).not.toBe(ZERO_MAC);
    expect(mac2Of(init2)).toBe(expectedMac2(cookie!, init2));

    // From another address the cookie does not fit: another cookie reply, no state change.
    const elsewhere = b.decapsulate(init2, { underLoad: true, source: OTHER_SOURCE });
    expect(errorCode(elsewhere)).toBe('CookieRequired');
    expect(elsewhere.cookieReply).not.toBeNull();
    expect(elsewhere.network).toEqual([]);
    expect(b.handshake.state).toBe('zeroed');

    // From the address the cookie was made for it is accepted.
    const accepted = b.decapsulate(init2, { underLoad: true, source: SOURCE });
    expect(accepted.error).toBeNull();
    expect(accepted.cookieReply).toBeNull();
    const response = only(accepted.network);
    expect(mac2Of(response)).toBe(ZERO_MAC); // B holds no cookie from A

    const done = a.decapsulate(response);
    expect(done.error).toBeNull();
    const data = only(done.network);
    expect(hex(b.decapsulate(data).tunnel?.subarray(0, 24))).toBe(hex(ascii('staged while handshaking')));
  });

  it('MAC2 is ignored when not under load, required and checked when under load', () => {
    const { a, b } = makePair();
    const init = only(a.initiateHandshake().network);
    const garbageMac2 = Uint8Array.from(init);
    garbageMac2.fill(0xa5, 132, 148);
    const underLoad = b.decapsulate(garbageMac2, { underLoad: true, source: SOURCE });
    expect(errorCode(underLoad)).toBe('CookieRequired');
    expect(underLoad.cookieReply).not.toBeNull();
    expect(b.decapsulate(garbageMac2).error).toBeNull();
  });

  it('a cookie reply sealed for another MAC1, or tampered with, is refused', () => {
    const { a, b, clock, idB } = makePair();
    const init1 = only(a.initiateHandshake().network);
    const reply1 = b.decapsulate(init1, { underLoad: true, source: SOURCE }).cookieReply!;
    clock.advance(REKEY_TIMEOUT_MS);
    const init2 = only(a.updateTimers().network);
    const current = parseInitiation(init2)!.sender;

    // The reply to the superseded initiation no longer names a pending handshake.
    expect(errorCode(a.decapsulate(reply1))).toBe('UnknownIndex');

    // Addressed to the current initiation but sealed with init1's MAC1 as associated data.
    const wrongAd = idB.cookieChecker.createReply(init1, current, SOURCE);
    expect(parseCookieReply(wrongAd)!.receiver).toBe(current);
    expect(errorCode(a.decapsulate(wrongAd))).toBe('DecryptionFailed');

    const genuine = b.decapsulate(init2, { underLoad: true, source: SOURCE }).cookieReply!;
    for (const index of [8, 20, 31, 32, 47, 48, 63]) {
      const out = a.decapsulate(flipBit(genuine, index));
      expect(errorCode(out), `byte ${index}`).toBe('DecryptionFailed');
    }
    expect(errorCode(a.decapsulate(flipBit(genuine, 4)))).toBe('UnknownIndex');
    expect(errorCode(a.decapsulate(flipBit(genuine, 1)))).toBe('InvalidMessage');

    // None of that gave A a cookie.
    clock.advance(REKEY_TIMEOUT_MS);
    const init3 = only(a.updateTimers().network);
    expect(mac2Of(init3)).toBe(ZERO_MAC);

    // The genuine reply to the current initiation is taken.
    const genuine3 = b.decapsulate(init3, { underLoad: true, source: SOURCE }).cookieReply!;
    expect(a.decapsulate(genuine3).error).toBeNull();
    clock.advance(REKEY_TIMEOUT_MS);
    const init4 = only(a.updateTimers().network);
    expect(mac2Of(init4)).not.toBe(ZERO_MAC);
    expect(b.decapsulate(init4, { underLoad: true, source: SOURCE }).error).toBeNull();
  });

  it('a cookie reply without a pending initiation is UnknownIndex', () => {
    const { a, b } = makePair();
    const other = makePair();
    const init = only(other.a.initiateHandshake().network);
    const reply = other.b.decapsulate(init, { underLoad: true, source: SOURCE }).cookieReply!;
    expect(errorCode(a.decapsulate(reply))).toBe('UnknownIndex');
    expect(errorCode(b.decapsulate(reply))).toBe('UnknownIndex');
  });

  it('the initiator stops using a cookie after COOKIE_REFRESH_TIME (120 s)', () => {
    expect(COOKIE_REFRESH_TIME_MS).toBe(120_000);
    const { a, b, clock } = makePair();
    const init1 = only(a.initiateHandshake().network);
    expect(a.decapsulate(b.decapsulate(init1, { underLoad: true, source: SOURCE }).cookieReply!).error).toBeNull();
    const tookAt = clock.now();

    clock.advance(REKEY_TIMEOUT_MS);
    expect(mac2Of(only(a.initiateHandshake().network))).not.toBe(ZERO_MAC);

    clock.advance(tookAt + 110_000 - clock.now());
    const at110 = only(a.initiateHandshake().network);
    expect(mac2Of(at110)).not.toBe(ZERO_MAC);
    // B's secret is 110 s old: still the same, so the cookie still validates.
    expect(b.decapsulate(at110, { underLoad: true, source: SOURCE }).error).toBeNull();

    clock.advance(tookAt + 121_000 - clock.now());
    const at121 = only(a.initiateHandshake().network);
    expect(mac2Of(at121)).toBe(ZERO_MAC);
    clock.advance(HANDSHAKE_INITIATION_RATE_MS + 1);
    expect(errorCode(b.decapsulate(at121, { underLoad: true, source: SOURCE }))).toBe('CookieRequired');
  });

  it('the responder rotates its secret every 120 s: an older cookie stops validating', () => {
    const { a, b, clock, idB } = makePair(); // B's secret is made now, at t = 0
    clock.advance(100_000);
    const init1 = only(a.initiateHandshake().network);
    const reply1 = b.decapsulate(init1, { underLoad: true, source: SOURCE }).cookieReply!;
    expect(a.decapsulate(reply1).error).toBeNull();

    clock.advance(REKEY_TIMEOUT_MS); // t = 105 s
    const init2 = only(a.initiateHandshake().network);
    expect(idB.cookieChecker.checkMac2(init2, SOURCE)).toBe(true);

    clock.advance(20_000); // t = 125 s: A's cookie is 25 s old, B's secret 125 s
    const init3 = only(a.initiateHandshake().network);
    expect(mac2Of(init3)).not.toBe(ZERO_MAC);
    const refused = b.decapsulate(init3, { underLoad: true, source: SOURCE });
    expect(errorCode(refused)).toBe('CookieRequired');
    expect(b.handshake.state).toBe('zeroed');

    // The fresh cookie (from the new secret) works again.
    const fresh = openCookie(refused.cookieReply!, idB.publicKey, init3)!;
    const old = openCookie(reply1, idB.publicKey, init1)!;
    expect(hex(fresh)).not.toBe(hex(old));
    expect(a.decapsulate(refused.cookieReply!).error).toBeNull();
    clock.advance(REKEY_TIMEOUT_MS);
    const init4 = only(a.initiateHandshake().network);
    expect(mac2Of(init4)).toBe(expectedMac2(fresh, init4));
    expect(b.decapsulate(init4, { underLoad: true, source: SOURCE }).error).toBeNull();
  });

  it('a response without MAC2 to an initiator under load gets a cookie reply naming the responder\'s index', () => {
    const { a, b, idA } = makePair();
    const init = only(a.initiateHandshake().network);
    const response = only(b.decapsulate(init).network);
    const out = a.decapsulate(response, { underLoad: true, source: SOURCE });
    expect(errorCode(out)).toBe('CookieRequired');
    expect(out.network).toEqual([]);
    expect(a.keypairs.current).toBeNull();
    expect(a.handshake.state).toBe('initiation-created');
    const reply = out.cookieReply!;
    expect(reply.length).toBe(64);
    expect(parseCookieReply(reply)!.receiver).toBe(parseResponse(response)!.sender);
    expect(openCookie(reply, idA.publicKey, response)).not.toBeNull();
  });

  // wireguard-go looks a cookie reply's receiver up among handshakes and keypairs, so a responder takes a
  // cookie reply to its response (the index keypairs.next owns) and stamps MAC2 on its next response.
  it('a responder takes a cookie reply to its response, and its next response carries MAC2', () => {
    const { a, b, clock, idA } = makePair();
    const init1 = only(a.initiateHandshake().network);
    const response1 = only(b.decapsulate(init1).network);
    const reply = a.decapsulate(response1, { underLoad: true, source: SOURCE }).cookieReply!;
    expect(reply).not.toBeNull();

    const took = b.decapsulate(reply);
    expect(took.error).toBeNull(); // tswg: UnknownIndex

    clock.advance(REKEY_TIMEOUT_MS);
    const init2 = only(a.updateTimers().network);
    const response2 = only(b.decapsulate(init2).network);
    expect(mac2Of(response2)).not.toBe(ZERO_MAC);
    expect(idA.cookieChecker.checkMac2(response2, SOURCE)).toBe(true);
    const done = a.decapsulate(response2, { underLoad: true, source: SOURCE });
    expect(done.error).toBeNull();
    expect(a.keypairs.current).not.toBeNull();
  });
});

describe('MAC1', () => {
  it('is checked on every handshake message, under load or not', () => {
    const { a, b } = makePair();
    const init = only(a.initiateHandshake().network);
    for (const options of [undefined, { underLoad: false }, { underLoad: true, source: SOURCE }]) {
      for (const index of [116, 123, 131, 5, 20, 60, 100, 115]) {
        const out = b.decapsulate(flipBit(init, index), options);
        expect(errorCode(out), `byte ${index} ${JSON.stringify(options)}`).toBe('InvalidMac1');
        expect(out.cookieReply).toBeNull(); // no cookie for a message that is not even addressed to us
        expect(out.network).toEqual([]);
      }
    }
    expect(b.handshake.state).toBe('zeroed');
    const response = only(b.decapsulate(init).network);
    for (const index of [60, 75, 4, 30, 50]) {
      const out = a.decapsulate(flipBit(response, index));
      expect(errorCode(out), `response byte ${index}`).toBe('InvalidMac1');
    }
    expect(a.keypairs.current).toBeNull();
    expect(a.decapsulate(response).error).toBeNull();
  });

  it('MAC1 is keyed by HASH("mac1----" || receiver public key) over the message up to MAC1', () => {
    const { a, idB } = makePair();
    const init = only(a.initiateHandshake().network);
    const key = blake2s(new Uint8Array([...ascii('mac1----'), ...idB.publicKey]));
    expect(hex(init.subarray(116, 132))).toBe(hex(blake2s(init.subarray(0, 116), { key, dkLen: 16 })));
    expect(idB.cookieChecker.checkMac1(init)).toBe(true);
    expect(idB.cookieChecker.checkMac1(flipBit(init, 0, 2))).toBe(false); // not a handshake message
  });

  it('a CookieGenerator takes no reply before it has stamped a message', () => {
    const { a, b, idB } = makePair();
    const init = only(a.initiateHandshake().network);
    const reply = b.decapsulate(init, { underLoad: true, source: SOURCE }).cookieReply!;
    const fresh = new CookieGenerator(idB.publicKey, nodeBackend, { now: () => 0, wallTime: () => 0 });
    expect(fresh.consumeReply(parseCookieReply(reply)!)).toBe(false);
  });
});
