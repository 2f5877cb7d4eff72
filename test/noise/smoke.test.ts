import { expect, test } from 'vitest';
import { ManualClock, StaticIdentity, Tunnel, generatePrivateKey, generatePresharedKey } from '../../src/noise/index.js';

test('smoke', () => {
  const clock = new ManualClock();
  const a = new StaticIdentity(generatePrivateKey(), undefined, clock);
  const b = new StaticIdentity(generatePrivateKey(), undefined, clock);
  const psk = generatePresharedKey();
  const ta = new Tunnel({ identity: a, peerPublicKey: b.publicKey, presharedKey: psk, clock });
  const tb = new Tunnel({ identity: b, peerPublicKey: a.publicKey, presharedKey: psk, clock });
  const o1 = ta.encapsulate(new Uint8Array([0x45, 1, 2, 3]));
  expect(o1.network.length).toBe(1);
  const o2 = tb.decapsulate(o1.network[0]!);
  expect(o2.error).toBeNull();
  expect(o2.network.length).toBe(1);
  const o3 = ta.decapsulate(o2.network[0]!);
  expect(o3.error).toBeNull();
  expect(o3.network.length).toBe(1);
  const o4 = tb.decapsulate(o3.network[0]!);
  expect(o4.error).toBeNull();
  expect(Array.from(o4.tunnel!.subarray(0, 4))).toEqual([0x45, 1, 2, 3]);
});
