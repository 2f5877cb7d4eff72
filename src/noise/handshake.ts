/**
 * Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard uses it (paper §5.4.2,
 * wireguard-go noise-protocol.go). One Handshake per peer holds the running
 * hash and chaining key between messages. The initiator creates an initiation
 * and consumes the response; the responder consumes the initiation (first
 * `readInitiation`, which finds out who sent it, then `consumeInitiation`)
 * and creates the response. Either side then derives a Keypair.
 *
 * MACs are not handled here: see cookie.ts.
 */
import { wipe } from './bytes.js';
import type { Clock } from './clock.js';
import { AEAD_TAG_SIZE, CONSTRUCTION, HANDSHAKE_INITIATION_RATE_MS, IDENTIFIER, KEY_SIZE, MAC_SIZE } from './constants.js';
import { NoiseError } from './errors.js';
import type { StaticIdentity } from './identity.js';
import { kdf1, kdf2, kdf3 } from './kdf.js';
import { Keypair } from './keypair.js';
import { clampPrivateKey } from './keys.js';
import {
  serializeInitiation,
  serializeResponse,
  type HandshakeInitiation,
  type HandshakeResponse,
} from './messages.js';
import type { Primitives } from './primitives.js';
import { isAfter, tai64n } from './tai64n.js';

const EMPTY = new Uint8Array(0);
const NO_MAC = new Uint8Array(MAC_SIZE);

/** HASH(CONSTRUCTION) and HASH(that || IDENTIFIER): fixed starting points of every handshake. */
export function initialState(p: Primitives): { chainKey: Uint8Array; hash: Uint8Array } {
  const chainKey = p.hash(new TextEncoder().encode(CONSTRUCTION));
  const hash = p.hash(chainKey, new TextEncoder().encode(IDENTIFIER));
  return { chainKey, hash };
}

export type HandshakeState =
  | 'zeroed'
  | 'initiation-created'
  | 'initiation-consumed'
  | 'response-created'
  | 'response-consumed';

/** What a responder learns from an initiation before it knows which peer sent it. */
export interface InitiationStart {
  peerPublicKey: Uint8Array;
  chainKey: Uint8Array;
  hash: Uint8Array;
}

/**
 * First half of consuming an initiation: decrypt the initiator's static key.
 * Returns null when the message does not decrypt under our identity.
 */
export function readInitiation(identity: StaticIdentity, message: HandshakeInitiation): InitiationStart | null {
  const p = identity.primitives;
  const initial = initialState(p);
  let hash = p.hash(initial.hash, identity.publicKey);
  hash = p.hash(hash, message.ephemeral);
  const firstChainKey = kdf1(p, initial.chainKey, message.ephemeral);
  let shared: Uint8Array;
  try {
    shared = p.x25519(identity.privateKey, message.ephemeral);
  } catch {
    wipe(firstChainKey);
    return null;
  }
  const [chainKey, key] = kdf2(p, firstChainKey, shared);
  wipe(firstChainKey);
  const peerPublicKey = p.aeadOpen(key, 0n, message.encryptedStatic, hash);
  wipe(shared);
  wipe(key);
  if (peerPublicKey === null || peerPublicKey.length !== KEY_SIZE) {
    wipe(chainKey);
    return null;
  }
  hash = p.hash(hash, message.encryptedStatic);
  return { peerPublicKey, chainKey, hash };
}

/** Zero what readInitiation returned once it is used or dropped. */
export function wipeInitiationStart(start: InitiationStart): void {
  wipe(start.chainKey);
  wipe(start.hash);
}

/** Mix a DH result into the chaining key (KDF1), wiping the old chaining key and the DH result. */
function mixDh(p: Primitives, chainKey: Uint8Array, shared: Uint8Array): Uint8Array {
  const next = kdf1(p, chainKey, shared);
  wipe(chainKey);
  wipe(shared);
  return next;
}

export class Handshake {
  state: HandshakeState = 'zeroed';
  /** Our index for the session being negotiated. */
  localIndex = 0;
  remoteIndex = 0;
  /** Last accepted initiation timestamp from this peer (TAI64N), to refuse replays. */
  lastTimestamp: Uint8Array | null = null;
  lastInitiationConsumedAt: number | null = null;
  /** When we last sent an initiation or a response (Clock.now()). */
  lastSentAt: number | null = null;

  private hash: Uint8Array = EMPTY;
  private chainKey: Uint8Array = EMPTY;
  private localEphemeral: Uint8Array | null = null;
  private remoteEphemeral: Uint8Array | null = null;
  private readonly precomputedStaticStatic: Uint8Array;
  private readonly p: Primitives;

  constructor(
    private readonly identity: StaticIdentity,
    readonly peerPublicKey: Uint8Array,
    public presharedKey: Uint8Array,
    private readonly clock: Clock,
  ) {
    this.p = identity.primitives;
    if (peerPublicKey.length !== KEY_SIZE) throw new NoiseError('InvalidKey', `peer public key must be ${KEY_SIZE} bytes`);
    if (presharedKey.length !== KEY_SIZE) throw new NoiseError('InvalidKey', `pre-shared key must be ${KEY_SIZE} bytes`);
    // A low-order peer key throws here: such a peer can never complete a handshake.
    this.precomputedStaticStatic = this.p.x25519(identity.privateKey, peerPublicKey);
  }

  /** Build an initiation (MAC fields zero) using `localIndex` as our sender index. */
  createInitiation(localIndex: number): Uint8Array {
    const p = this.p;
    const initial = initialState(p);
    this.clearEphemeral();
    this.localEphemeral = clampPrivateKey(p.randomBytes(KEY_SIZE));
    const ephemeral = p.x25519PublicKey(this.localEphemeral);
    let hash = p.hash(initial.hash, this.peerPublicKey);
    let chainKey = kdf1(p, initial.chainKey, ephemeral);
    hash = p.hash(hash, ephemeral);

    const shared = p.x25519(this.localEphemeral, this.peerPublicKey);
    let [nextChainKey, key] = kdf2(p, chainKey, shared);
    wipe(shared);
    wipe(chainKey);
    chainKey = nextChainKey;
    const encryptedStatic = p.aeadSeal(key, 0n, this.identity.publicKey, hash);
    hash = p.hash(hash, encryptedStatic);
    wipe(key);

    [nextChainKey, key] = kdf2(p, chainKey, this.precomputedStaticStatic);
    wipe(chainKey);
    chainKey = nextChainKey;
    const encryptedTimestamp = p.aeadSeal(key, 0n, tai64n(this.clock.wallTime()), hash);
    hash = p.hash(hash, encryptedTimestamp);
    wipe(key);

    wipe(this.hash);
    wipe(this.chainKey);
    this.hash = hash;
    this.chainKey = chainKey;
    this.localIndex = localIndex;
    this.state = 'initiation-created';
    return serializeInitiation({ sender: localIndex, ephemeral, encryptedStatic, encryptedTimestamp, mac1: NO_MAC, mac2: NO_MAC });
  }

  /**
   * Second half of consuming an initiation from this peer: check its
   * timestamp and rate, then adopt its state. Returns an error code or null.
   */
  consumeInitiation(message: HandshakeInitiation, start: InitiationStart): NoiseError | null {
    const p = this.p;
    const [chainKey, key] = kdf2(p, start.chainKey, this.precomputedStaticStatic);
    const timestamp = p.aeadOpen(key, 0n, message.encryptedTimestamp, start.hash);
    wipe(key);
    const hash = p.hash(start.hash, message.encryptedTimestamp);
    wipeInitiationStart(start);
    const refuse = (error: NoiseError) => {
      wipe(chainKey);
      wipe(hash);
      return error;
    };
    if (timestamp === null) return refuse(new NoiseError('DecryptionFailed', 'initiation timestamp did not authenticate'));
    if (this.lastTimestamp !== null && !isAfter(timestamp, this.lastTimestamp)) {
      return refuse(new NoiseError('ReplayedTimestamp', 'initiation timestamp is not newer than the last accepted one'));
    }
    const now = this.clock.now();
    if (this.lastInitiationConsumedAt !== null && now - this.lastInitiationConsumedAt <= HANDSHAKE_INITIATION_RATE_MS) {
      return refuse(new NoiseError('InitiationFlood', 'initiations from this peer arrive too fast'));
    }
    this.forgetHandshakeKeys();
    this.hash = hash;
    this.chainKey = chainKey;
    this.remoteIndex = message.sender;
    this.remoteEphemeral = new Uint8Array(message.ephemeral);
    this.lastTimestamp = timestamp;
    this.lastInitiationConsumedAt = now;
    this.state = 'initiation-consumed';
    return null;
  }

  /** Build the response to the initiation just consumed (MAC fields zero). */
  createResponse(localIndex: number): Uint8Array {
    if (this.state !== 'initiation-consumed' || this.remoteEphemeral === null) {
      throw new NoiseError('UnexpectedMessage', 'no consumed initiation to respond to');
    }
    const p = this.p;
    this.localEphemeral = clampPrivateKey(p.randomBytes(KEY_SIZE));
    const ephemeral = p.x25519PublicKey(this.localEphemeral);
    let hash = p.hash(this.hash, ephemeral);
    let chainKey = kdf1(p, this.chainKey, ephemeral);
    chainKey = mixDh(p, chainKey, p.x25519(this.localEphemeral, this.remoteEphemeral));
    chainKey = mixDh(p, chainKey, p.x25519(this.localEphemeral, this.peerPublicKey));
    const [nextChainKey, tau, key] = kdf3(p, chainKey, this.presharedKey);
    wipe(chainKey);
    chainKey = nextChainKey;
    hash = p.hash(hash, tau);
    const encryptedNothing = p.aeadSeal(key, 0n, EMPTY, hash);
    hash = p.hash(hash, encryptedNothing);
    wipe(key);
    wipe(tau);

    wipe(this.hash);
    wipe(this.chainKey);
    this.hash = hash;
    this.chainKey = chainKey;
    this.localIndex = localIndex;
    this.state = 'response-created';
    return serializeResponse({
      sender: localIndex,
      receiver: this.remoteIndex,
      ephemeral,
      encryptedNothing,
      mac1: NO_MAC,
      mac2: NO_MAC,
    });
  }

  /** Consume the response to our initiation. Returns an error, or null on success. */
  consumeResponse(message: HandshakeResponse): NoiseError | null {
    if (this.state !== 'initiation-created' || this.localEphemeral === null) {
      return new NoiseError('UnexpectedMessage', 'response without a pending initiation');
    }
    if (message.receiver !== this.localIndex) return new NoiseError('UnknownIndex', 'response is for another initiation');
    const p = this.p;
    let hash = p.hash(this.hash, message.ephemeral);
    let chainKey = kdf1(p, this.chainKey, message.ephemeral);
    try {
      chainKey = mixDh(p, chainKey, p.x25519(this.localEphemeral, message.ephemeral));
      chainKey = mixDh(p, chainKey, p.x25519(this.identity.privateKey, message.ephemeral));
    } catch (error) {
      wipe(chainKey);
      return error instanceof NoiseError ? error : new NoiseError('DecryptionFailed', String(error));
    }
    const [nextChainKey, tau, key] = kdf3(p, chainKey, this.presharedKey);
    wipe(chainKey);
    chainKey = nextChainKey;
    hash = p.hash(hash, tau);
    const ok = p.aeadOpen(key, 0n, message.encryptedNothing, hash);
    wipe(key);
    wipe(tau);
    if (ok === null || message.encryptedNothing.length !== AEAD_TAG_SIZE) {
      wipe(chainKey);
      return new NoiseError('DecryptionFailed', 'response did not authenticate');
    }
    wipe(this.hash);
    wipe(this.chainKey);
    this.hash = p.hash(hash, message.encryptedNothing);
    this.chainKey = chainKey;
    this.remoteIndex = message.sender;
    this.state = 'response-consumed';
    return null;
  }

  /** Derive the transport keys once the handshake is complete; the handshake returns to 'zeroed'. */
  deriveKeypair(): Keypair {
    let isInitiator: boolean;
    if (this.state === 'response-consumed') isInitiator = true;
    else if (this.state === 'response-created') isInitiator = false;
    else throw new NoiseError('UnexpectedMessage', `cannot derive keys in handshake state ${this.state}`);
    const [first, second] = kdf2(this.p, this.chainKey, EMPTY);
    const keypair = isInitiator
      ? new Keypair(first, second, this.localIndex, this.remoteIndex, true, this.clock.now())
      : new Keypair(second, first, this.localIndex, this.remoteIndex, false, this.clock.now());
    this.reset();
    return keypair;
  }

  /** Forget the handshake in progress (not the replay/flood bookkeeping). */
  reset(): void {
    this.forgetHandshakeKeys();
    this.state = 'zeroed';
  }

  /** The peer is removed or its tunnel replaced: zero the static-static secret and the pre-shared key too. */
  destroy(): void {
    this.reset();
    wipe(this.precomputedStaticStatic);
    wipe(this.presharedKey);
  }

  private forgetHandshakeKeys(): void {
    wipe(this.hash);
    wipe(this.chainKey);
    this.hash = EMPTY;
    this.chainKey = EMPTY;
    this.clearEphemeral();
    this.remoteEphemeral = null;
  }

  private clearEphemeral(): void {
    if (this.localEphemeral !== null) this.p.forgetPrivateKey(this.localEphemeral);
    wipe(this.localEphemeral);
    this.localEphemeral = null;
  }
}
