/**
 * Embedding tswg as a library.
 *
 * Part 1 needs nothing but Node: two in-memory Tunnels (the sans-I/O protocol
 * core) do a WireGuard handshake and carry one IP packet, with this program
 * playing the network between them.
 *
 * Part 2 runs as root only: a real Device on a TUN interface and a UDP port,
 * configured the way `wg set` configures it, then closed again.
 *
 *   npm run build && npx tsc -p examples/tsconfig.json && node dist/examples/library/tunnel-pair.js [IFNAME]
 */
import { createLogger, Device, LinuxTun, parseLogLevel } from 'tswg';
import { encodeKey, generatePrivateKey, publicKeyOf, StaticIdentity, Tunnel } from 'tswg/noise';

/** A minimal IPv4 header (20 bytes) and payload, enough for the tunnel: it only looks at the version. */
function ipv4Packet(payload: string): Uint8Array {
  const body = new TextEncoder().encode(payload);
  const packet = new Uint8Array(20 + body.length);
  packet[0] = 0x45;
  new DataView(packet.buffer).setUint16(2, packet.length);
  packet.set(body, 20);
  return packet;
}

/** Carry every datagram `from` wants to send to `to`, and `to`'s answers back, until both are quiet. */
function deliver(datagrams: Uint8Array[], from: Tunnel, to: Tunnel, received: Uint8Array[]): void {
  for (const datagram of datagrams) {
    const out = to.decapsulate(datagram);
    if (out.error !== null) throw new Error(`dropped: ${out.error.code}: ${out.error.message}`);
    if (out.tunnel !== null) received.push(out.tunnel);
    deliver(out.network, to, from, received);
  }
}

export function inMemoryPair(): { received: string; alice: string; bob: string } {
  const aliceKey = generatePrivateKey();
  const bobKey = generatePrivateKey();
  const alice = new Tunnel({ identity: new StaticIdentity(aliceKey), peerPublicKey: publicKeyOf(bobKey) });
  const bob = new Tunnel({ identity: new StaticIdentity(bobKey), peerPublicKey: publicKeyOf(aliceKey) });

  // Alice has a packet for Bob: the tunnel starts a handshake and holds the packet until it completes.
  const packet = ipv4Packet('hello over WireGuard');
  const atBob: Uint8Array[] = [];
  deliver(alice.encapsulate(packet).network, alice, bob, atBob);
  const [first] = atBob;
  if (first === undefined) throw new Error('the packet did not arrive');
  // Decrypted packets are zero-padded to a multiple of 16; the IPv4 total length says where it ends.
  const length = new DataView(first.buffer, first.byteOffset).getUint16(2);
  return {
    received: new TextDecoder().decode(first.subarray(20, length)),
    alice: encodeKey(publicKeyOf(aliceKey)),
    bob: encodeKey(publicKeyOf(bobKey)),
  };
}

export async function realDevice(interfaceName: string): Promise<number> {
  const log = createLogger(parseLogLevel(process.env.LOG_LEVEL), interfaceName);
  const device = new Device({ tun: LinuxTun.create(interfaceName), log });
  try {
    await device.start();
    // What `wg set IFNAME private-key … listen-port 0` sends over the UAPI socket.
    await device.set({ privateKey: generatePrivateKey(), listenPort: 0, replacePeers: true, peers: [] });
    return device.listenPort;
  } finally {
    await device.close();
  }
}

const pair = inMemoryPair();
process.stdout.write(`in memory: ${pair.alice.slice(0, 8)}… → ${pair.bob.slice(0, 8)}…: "${pair.received}"\n`);
if (process.getuid?.() === 0) {
  const name = process.argv[2] ?? 'tswg-example';
  const port = await realDevice(name);
  process.stdout.write(`device: ${name} listened on UDP port ${port}, then closed\n`);
} else {
  process.stdout.write('device: skipped (needs root for the TUN interface)\n');
}
