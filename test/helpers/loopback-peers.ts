/**
 * Two devices in one process made each other's only peer over loopback:
 * each allows the other's inner address and sends to its listening port on
 * 127.0.0.1.
 */
import { parseCidr } from '../../src/device/addr.js';
import type { Device } from '../../src/device/device.js';

export interface LoopbackPeer {
  publicKey: Uint8Array;
  /** The inner IPv4 address the other side routes to it (a /32). */
  address: string;
  device: Device;
}

export async function connectOverLoopback(a: LoopbackPeer, b: LoopbackPeer): Promise<void> {
  const change = (peer: LoopbackPeer) => ({
    publicKey: peer.publicKey,
    remove: false,
    updateOnly: false,
    replaceAllowedIps: true,
    allowedIps: [parseCidr(`${peer.address}/32`)],
    endpoint: { family: 4 as const, address: '127.0.0.1', port: peer.device.listenPort },
  });
  await a.device.set({ replacePeers: false, peers: [change(b)] });
  await b.device.set({ replacePeers: false, peers: [change(a)] });
}
