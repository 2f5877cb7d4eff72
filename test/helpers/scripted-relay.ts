/**
 * A relay server in miniature for client tests: a plain UDP socket that
 * answers one registration (HELLO → CHALLENGE → REGISTER → REGISTERED) as
 * the real server does, so the test can then drive the client with whatever
 * it likes, forged or not.
 */
import { randomBytes } from 'node:crypto';
import {
  challengeSignedPart,
  decodeRelayMessage,
  deriveRelayAuthKey,
  keyProofKey,
  registeredSignedPart,
  relayTag,
  relayTagValid,
  registerSignedPart,
  withTag,
  type RegisterMessage,
} from '../../src/nat/relay/index.js';
import { nobleBackend } from '../../src/noise/index.js';
import type { UdpDevice } from './udp-device.js';

export interface AcceptedRegistration {
  /** Where the client sends from. */
  clientPort: number;
  register: RegisterMessage;
  /** The key that tags REGISTERED (and proves the node key). */
  proofKey: Uint8Array;
  token: Uint8Array;
  /** The REGISTERED sent (tests replay it). */
  registered: Uint8Array;
}

export class ScriptedRelay {
  readonly authKey: Uint8Array;
  readonly privateKey = new Uint8Array(randomBytes(32));
  readonly publicKey = nobleBackend.x25519PublicKey(this.privateKey);

  constructor(
    readonly socket: UdpDevice,
    credential: string,
  ) {
    this.authKey = deriveRelayAuthKey(credential);
  }

  /** Answer the next HELLO with a CHALLENGE; returns the client's port. */
  async challenge(): Promise<number> {
    const hello = await this.socket.next();
    const message = decodeRelayMessage(hello.data);
    if (message.kind !== 'hello') throw new Error(`expected HELLO, got ${message.kind}`);
    const signed = challengeSignedPart(message.nonce, this.publicKey, Date.now(), new Uint8Array(randomBytes(16)));
    await this.socket.send(withTag(signed, relayTag(this.authKey, signed)), hello.port);
    return hello.port;
  }

  /** Take the REGISTER that follows and check its proof; does not answer. */
  async takeRegister(): Promise<{ register: RegisterMessage; proofKey: Uint8Array }> {
    const arrival = await this.socket.next();
    const register = decodeRelayMessage(arrival.data);
    if (register.kind !== 'register') throw new Error(`expected REGISTER, got ${register.kind}`);
    const proofKey = keyProofKey(this.authKey, nobleBackend.x25519(this.privateKey, register.publicKey), this.publicKey, register.publicKey);
    if (!relayTagValid(proofKey, registerSignedPart(register), register.tag)) throw new Error('the REGISTER does not prove its key');
    return { register, proofKey };
  }

  /** A whole registration, answered with `token`. */
  async accept(token: Uint8Array = new Uint8Array(randomBytes(8))): Promise<AcceptedRegistration> {
    const clientPort = await this.challenge();
    const { register, proofKey } = await this.takeRegister();
    const answer = registeredSignedPart(register.nonce, token, 90);
    const registered = withTag(answer, relayTag(proofKey, answer));
    await this.socket.send(registered, clientPort);
    return { clientPort, register, proofKey, token, registered };
  }
}
