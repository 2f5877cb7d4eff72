/**
 * The relay protocol spoken by hand, over any datagram transport (a UDP socket
 * here, or one in another namespace): what a node, an attacker with the
 * cluster credential but not the victim's key, or a replayer sends.
 */
import { randomBytes } from 'node:crypto';
import type { Endpoint } from '../../src/device/addr.js';
import {
  decodeRelayMessage,
  deriveRelayAuthKey,
  helloSignedPart,
  keyProofKey,
  refusedSignedPart,
  registerSignedPart,
  relayTag,
  relayTagValid,
  withTag,
  type ChallengeMessage,
  type RelayMessage,
} from '../../src/nat/relay/index.js';
import { nobleBackend } from '../../src/noise/index.js';

/** What RelayWire needs of a socket (UdpDevice and NetnsUdpPuppet have it). */
export interface DatagramTransport {
  send(data: Uint8Array, port: number, address?: string): unknown;
  next(timeoutMs?: number): Promise<{ data: Uint8Array }>;
  quietFor(ms: number): Promise<boolean>;
}

export interface RegisterOptions {
  /** Default: the wire's own key. */
  privateKey?: Uint8Array;
  /** Name this key in the REGISTER (an attacker claiming another's key); the proof is still made with privateKey. */
  claimedPublicKey?: Uint8Array;
  timestampMs?: number;
}

export class RelayWire {
  readonly authKey: Uint8Array;
  readonly privateKey = new Uint8Array(randomBytes(32));

  constructor(
    readonly device: DatagramTransport,
    readonly server: Endpoint,
    credential: string,
  ) {
    this.authKey = deriveRelayAuthKey(credential);
  }

  send(bytes: Uint8Array): void {
    void this.device.send(bytes, this.server.port, this.server.address);
  }

  async next(timeoutMs = 3000): Promise<RelayMessage> {
    return decodeRelayMessage((await this.device.next(timeoutMs)).data);
  }

  /** The next message must be an authentic REFUSED; its reason. */
  async nextRefusal(): Promise<number> {
    const message = await this.next();
    if (message.kind !== 'refused') throw new Error(`expected REFUSED, got ${message.kind}`);
    if (!relayTagValid(this.authKey, refusedSignedPart(message.nonce, message.reason), message.tag)) throw new Error('the REFUSED is not authentic');
    return message.reason;
  }

  helloBytes(): Uint8Array {
    const signed = helloSignedPart(new Uint8Array(randomBytes(16)));
    return withTag(signed, relayTag(this.authKey, signed));
  }

  async hello(): Promise<ChallengeMessage> {
    this.send(this.helloBytes());
    const message = await this.next();
    if (message.kind !== 'challenge') throw new Error(`expected CHALLENGE, got ${message.kind}`);
    return message;
  }

  register(challenge: ChallengeMessage, options: RegisterOptions = {}): Uint8Array {
    const privateKey = options.privateKey ?? this.privateKey;
    const own = nobleBackend.x25519PublicKey(privateKey);
    const publicKey = options.claimedPublicKey ?? own;
    const proof = keyProofKey(this.authKey, nobleBackend.x25519(privateKey, challenge.relayPublicKey), challenge.relayPublicKey, publicKey);
    const signed = registerSignedPart({
      publicKey,
      timestampMs: options.timestampMs ?? Date.now(),
      nonce: new Uint8Array(randomBytes(16)),
      relayPublicKey: challenge.relayPublicKey,
      issuedMs: challenge.issuedMs,
      cookie: challenge.cookie,
    });
    return withTag(signed, relayTag(proof, signed));
  }

  /** HELLO, REGISTER, REGISTERED: the token. */
  async registerFully(privateKey: Uint8Array = this.privateKey): Promise<Uint8Array> {
    this.send(this.register(await this.hello(), { privateKey }));
    const answer = await this.next();
    if (answer.kind !== 'registered') throw new Error(`expected REGISTERED, got ${answer.kind}`);
    return answer.token;
  }
}
