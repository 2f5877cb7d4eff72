/**
 * MAC1, MAC2 and cookie replies (WireGuard paper §5.4.4 and §5.4.7).
 *
 * MAC1 = MAC(HASH("mac1----" || receiver's public key), message up to MAC1):
 * proves the sender knows whom it talks to; always checked.
 * MAC2 = MAC(cookie, message up to MAC2): only required while the responder
 * is under load. The cookie is MAC(secret, sender's address) and reaches the
 * initiator XChaCha20-Poly1305-sealed under HASH("cookie--" || responder key)
 * with the offending message's MAC1 as associated data.
 */
import type { Clock } from './clock.js';
import { constantTimeEqual, isAllZero } from './bytes.js';
import {
  COOKIE_NONCE_SIZE,
  COOKIE_REFRESH_TIME_MS,
  COOKIE_SIZE,
  LABEL_COOKIE,
  LABEL_MAC1,
  MAC_SIZE,
  MESSAGE_INITIATION_TYPE,
  MESSAGE_RESPONSE_TYPE,
} from './constants.js';
import { INITIATION_MAC1_OFFSET, RESPONSE_MAC1_OFFSET, serializeCookieReply, type CookieReply } from './messages.js';
import type { Primitives } from './primitives.js';

const encoder = new TextEncoder();
const MAC1_LABEL = encoder.encode(LABEL_MAC1);
const COOKIE_LABEL = encoder.encode(LABEL_COOKIE);

/** Offset of MAC1 in a handshake message (initiation or response); MAC2 follows it. */
function mac1Offset(message: Uint8Array): number {
  return message[0] === MESSAGE_INITIATION_TYPE ? INITIATION_MAC1_OFFSET : RESPONSE_MAC1_OFFSET;
}

function isHandshakeMessage(message: Uint8Array): boolean {
  return message[0] === MESSAGE_INITIATION_TYPE || message[0] === MESSAGE_RESPONSE_TYPE;
}

/** Responder side: one per local static key. */
export class CookieChecker {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private secret: Uint8Array;
  private secretSetAt: number;

  constructor(
    localPublicKey: Uint8Array,
    private readonly primitives: Primitives,
    private readonly clock: Clock,
  ) {
    this.mac1Key = primitives.hash(MAC1_LABEL, localPublicKey);
    this.cookieKey = primitives.hash(COOKIE_LABEL, localPublicKey);
    this.secret = primitives.randomBytes(32);
    this.secretSetAt = clock.now();
  }

  /** True when the handshake message carries a valid MAC1 for our key. */
  checkMac1(message: Uint8Array): boolean {
    if (!isHandshakeMessage(message)) return false;
    const offset = mac1Offset(message);
    const expected = this.primitives.mac(this.mac1Key, message.subarray(0, offset));
    return constantTimeEqual(expected, message.subarray(offset, offset + MAC_SIZE));
  }

  /** True when the message carries a valid MAC2 for the cookie of `source` (the sender's address bytes). */
  checkMac2(message: Uint8Array, source: Uint8Array): boolean {
    if (!isHandshakeMessage(message)) return false;
    const offset = mac1Offset(message) + MAC_SIZE;
    const mac2 = message.subarray(offset, offset + MAC_SIZE);
    if (isAllZero(mac2)) return false;
    const expected = this.primitives.mac(this.cookie(source), message.subarray(0, offset));
    return constantTimeEqual(expected, mac2);
  }

  /** A cookie reply to `message` (whose sender index is `senderIndex`) for the sender at `source`. */
  createReply(message: Uint8Array, senderIndex: number, source: Uint8Array): Uint8Array {
    const offset = mac1Offset(message);
    const mac1 = message.subarray(offset, offset + MAC_SIZE);
    const nonce = this.primitives.randomBytes(COOKIE_NONCE_SIZE);
    const encryptedCookie = this.primitives.xaeadSeal(this.cookieKey, nonce, this.cookie(source), mac1);
    return serializeCookieReply({ receiver: senderIndex, nonce, encryptedCookie });
  }

  private cookie(source: Uint8Array): Uint8Array {
    if (this.clock.now() - this.secretSetAt >= COOKIE_REFRESH_TIME_MS) {
      this.secret = this.primitives.randomBytes(32);
      this.secretSetAt = this.clock.now();
    }
    return this.primitives.mac(this.secret, source);
  }
}

/** Initiator side: one per peer; stamps our handshake messages and takes cookie replies. */
export class CookieGenerator {
  private readonly mac1Key: Uint8Array;
  private readonly cookieKey: Uint8Array;
  private cookie: Uint8Array | null = null;
  private cookieSetAt = 0;
  private lastMac1: Uint8Array | null = null;

  constructor(
    peerPublicKey: Uint8Array,
    private readonly primitives: Primitives,
    private readonly clock: Clock,
  ) {
    this.mac1Key = primitives.hash(MAC1_LABEL, peerPublicKey);
    this.cookieKey = primitives.hash(COOKIE_LABEL, peerPublicKey);
  }

  /** Write MAC1 and (when we hold a fresh cookie) MAC2 into a serialized handshake message, in place. */
  addMacs(message: Uint8Array): void {
    const offset = mac1Offset(message);
    const mac1 = this.primitives.mac(this.mac1Key, message.subarray(0, offset));
    message.set(mac1, offset);
    this.lastMac1 = mac1;
    const mac2Offset = offset + MAC_SIZE;
    if (this.cookie !== null && this.clock.now() - this.cookieSetAt < COOKIE_REFRESH_TIME_MS) {
      message.set(this.primitives.mac(this.cookie, message.subarray(0, mac2Offset)), mac2Offset);
    } else {
      message.fill(0, mac2Offset, mac2Offset + MAC_SIZE);
    }
  }

  /** Take a cookie reply to the last message we stamped; false when it does not authenticate. */
  consumeReply(reply: CookieReply): boolean {
    if (this.lastMac1 === null) return false;
    const cookie = this.primitives.xaeadOpen(this.cookieKey, reply.nonce, reply.encryptedCookie, this.lastMac1);
    if (cookie === null || cookie.length !== COOKIE_SIZE) return false;
    this.cookie = cookie;
    this.cookieSetAt = this.clock.now();
    this.lastMac1 = null;
    return true;
  }
}
