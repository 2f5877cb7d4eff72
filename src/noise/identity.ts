/** The local static key pair of a device, and the MAC1/cookie checker that belongs to it. */
import type { Clock } from './clock.js';
import { wipe } from './bytes.js';
import { systemClock } from './clock.js';
import { KEY_SIZE } from './constants.js';
import { CookieChecker } from './cookie.js';
import { NoiseError } from './errors.js';
import { defaultPrimitives } from './default-backend.js';
import type { Primitives } from './primitives.js';

export class StaticIdentity {
  readonly publicKey: Uint8Array;
  readonly cookieChecker: CookieChecker;

  constructor(
    readonly privateKey: Uint8Array,
    readonly primitives: Primitives = defaultPrimitives,
    readonly clock: Clock = systemClock,
  ) {
    if (privateKey.length !== KEY_SIZE) throw new NoiseError('InvalidKey', `private key must be ${KEY_SIZE} bytes, got ${privateKey.length}`);
    this.publicKey = primitives.x25519PublicKey(privateKey);
    this.cookieChecker = new CookieChecker(this.publicKey, primitives, clock);
  }

  /** The key is being replaced or removed: the backend forgets it and the array is zeroed. Nothing may use this identity after. */
  destroy(): void {
    this.primitives.forgetPrivateKey(this.privateKey);
    wipe(this.privateKey);
  }
}
