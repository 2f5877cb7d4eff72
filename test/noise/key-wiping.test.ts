/**
 * Key material is zeroed when it is discarded, as far as JavaScript allows
 * (a copy the GC moved or a string it made cannot be reached): every X25519
 * result, ephemeral and chaining key once a handshake is done with it, and
 * the static-static secret, pre-shared key and session keys when a tunnel
 * closes; node:crypto's cached KeyObject of a private key is dropped when the
 * key is (identity destroyed, ephemeral cleared), not left to the GC.
 */
import { describe, expect, it } from 'vitest';
import { StaticIdentity, Tunnel, generatePrivateKey, nodeBackend, type Primitives } from '../../src/noise/index.js';
import { isAllZero } from '../../src/noise/bytes.js';
import { holdsPrivateKeyObject } from '../../src/noise/node-backend.js';

/** The node backend, recording every private key it derives a public key from and every X25519 result. */
function recordingBackend(): { backend: Primitives; privateKeys: Uint8Array[]; shared: Uint8Array[] } {
  const privateKeys: Uint8Array[] = [];
  const shared: Uint8Array[] = [];
  const backend: Primitives = {
    ...nodeBackend,
    name: 'recording',
    x25519(privateKey, publicKey) {
      const out = nodeBackend.x25519(privateKey, publicKey);
      shared.push(out);
      return out;
    },
    x25519PublicKey(privateKey) {
      privateKeys.push(privateKey);
      return nodeBackend.x25519PublicKey(privateKey);
    },
  };
  return { backend, privateKeys, shared };
}

describe('key material is zeroed when discarded', () => {
  it('a handshake leaves only the sessions and the static-static secrets; closing the tunnels zeroes those too', () => {
    const { backend, privateKeys, shared } = recordingBackend();
    const a = new StaticIdentity(generatePrivateKey(), backend);
    const b = new StaticIdentity(generatePrivateKey(), backend);
    const psk = new Uint8Array(32).fill(7);
    const ta = new Tunnel({ identity: a, peerPublicKey: b.publicKey, presharedKey: psk });
    const tb = new Tunnel({ identity: b, peerPublicKey: a.publicKey, presharedKey: psk });
    const staticStatic = shared.slice(); // computed once per tunnel, kept for its life
    expect(staticStatic.length).toBe(2);

    const initiation = ta.initiateHandshake().network[0]!;
    const response = tb.decapsulate(initiation).network[0]!;
    const keepalive = ta.decapsulate(response).network[0]!;
    expect(tb.decapsulate(keepalive).error).toBeNull();
    expect(ta.keypairs.current).not.toBeNull();
    expect(tb.keypairs.current).not.toBeNull();

    const ephemerals = privateKeys.slice(2);
    expect(ephemerals.length).toBe(2);
    for (const key of ephemerals) {
      expect(isAllZero(key), 'ephemeral private key').toBe(true);
      expect(holdsPrivateKeyObject(key), 'ephemeral KeyObject still cached').toBe(false);
    }
    const handshakeSecrets = shared.slice(2);
    expect(handshakeSecrets.length).toBe(6); // es, ss is precomputed; ee, se, and the responder's three
    handshakeSecrets.forEach((secret, i) => expect(isAllZero(secret), `X25519 result ${i} of the handshake`).toBe(true));
    for (const secret of staticStatic) expect(isAllZero(secret)).toBe(false);

    const sessionKeys = [ta, tb].flatMap((t) => t.keypairs.all().flatMap((k) => [k.sendKey, k.receiveKey]));
    ta.close();
    tb.close();
    for (const key of sessionKeys) expect(isAllZero(key), 'session key').toBe(true);
    for (const secret of staticStatic) expect(isAllZero(secret), 'static-static secret').toBe(true);
    expect(isAllZero(ta.handshake.presharedKey) && isAllZero(tb.handshake.presharedKey), 'pre-shared keys').toBe(true);
    expect(isAllZero(psk), "the caller's own pre-shared key array is left alone").toBe(false);
  });

  it("destroying an identity zeroes its private key and drops node:crypto's KeyObject of it", () => {
    const identity = new StaticIdentity(generatePrivateKey(), nodeBackend);
    nodeBackend.x25519(identity.privateKey, new StaticIdentity(generatePrivateKey(), nodeBackend).publicKey);
    expect(holdsPrivateKeyObject(identity.privateKey)).toBe(true);
    identity.destroy();
    expect(holdsPrivateKeyObject(identity.privateKey)).toBe(false);
    expect(isAllZero(identity.privateKey)).toBe(true);
  });
});
