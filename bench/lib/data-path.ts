/**
 * THE ADAPTER between the benchmarks and the data path under test. bench:micro
 * (tunnel round trip) and bench:alloc (allocations per packet) call the data
 * path only through `dataPath` below, so when the data path gets a new API
 * (e.g. a zero-allocation encapsulate into a caller's buffer) only this file
 * changes and the harness, its output and its figures stay comparable.
 *
 * Contract of a DataPathPair: `encrypt` turns one IP packet of A's into one
 * datagram for B and returns its length (0: nothing sent); the datagram may
 * live in a reused buffer and is read only through `lastDatagram()` (setup
 * code, never measured). `decrypt` hands one datagram to B and returns the
 * plaintext length (0: dropped). Both run on a frozen clock, so no timer
 * (rekey, keepalive) fires during a measurement.
 */
import { ManualClock } from '../../src/noise/clock.js';
import { StaticIdentity } from '../../src/noise/identity.js';
import { generatePrivateKey } from '../../src/noise/keys.js';
import { defaultPrimitives } from '../../src/noise/default-backend.js';
import type { Primitives } from '../../src/noise/primitives.js';
import { Tunnel } from '../../src/noise/tunnel.js';
import { TransportSlot } from '../../src/noise/transport-slot.js';
import { TUNNEL_MTU } from '../constants.js';

export interface DataPathPair {
  /** The crypto backend the pair runs on (Primitives.name). */
  readonly backend: string;
  encrypt(packet: Uint8Array): number;
  /** A copy of the datagram the last encrypt() produced (setup only). */
  lastDatagram(): Uint8Array;
  decrypt(datagram: Uint8Array): number;
}

export interface DataPathAdapter {
  /** Printed with every figure, so a table says which API it measured. */
  readonly description: string;
  /** Two peers with a completed handshake (A initiated, B confirmed). */
  connect(primitives?: Primitives): DataPathPair;
}

/** Room for the largest benchmark packet, its padding and the transport overhead. */
const SLOT_BYTES = 2048;

function single(datagrams: Uint8Array[], what: string): Uint8Array {
  if (datagrams.length !== 1) throw new Error(`${what}: expected one datagram, got ${datagrams.length}`);
  return datagrams[0]!;
}

/** Two tunnels with a completed handshake: A initiated, B has confirmed the session. */
function connectedTunnels(primitives: Primitives): { a: Tunnel; b: Tunnel } {
  const clock = new ManualClock();
  const idA = new StaticIdentity(generatePrivateKey(), primitives, clock);
  const idB = new StaticIdentity(generatePrivateKey(), primitives, clock);
  const a = new Tunnel({ identity: idA, peerPublicKey: idB.publicKey, clock, jitter: () => 0, mtu: TUNNEL_MTU });
  const b = new Tunnel({ identity: idB, peerPublicKey: idA.publicKey, clock, jitter: () => 0, mtu: TUNNEL_MTU });
  const response = single(b.decapsulate(single(a.initiateHandshake().network, 'initiation')).network, 'response');
  const confirmation = single(a.decapsulate(response).network, 'keepalive');
  if (b.decapsulate(confirmation).error !== null) throw new Error('handshake did not complete');
  return { a, b };
}

/**
 * The device's fast path: Tunnel.sealTransport / openTransport in place in
 * TransportSlots (what the TUN and UDP rings hand the device). The packet
 * and datagram are first copied into the slot, as the kernel's read into the
 * ring would.
 */
export const fastDataPath: DataPathAdapter = {
  description: 'Tunnel.sealTransport/openTransport in place (the device fast path)',
  connect(primitives: Primitives = defaultPrimitives): DataPathPair {
    const { a, b } = connectedTunnels(primitives);
    const sendSlot = new TransportSlot(new Uint8Array(SLOT_BYTES));
    const receiveSlot = new TransportSlot(new Uint8Array(SLOT_BYTES));
    let last = 0;
    return {
      backend: primitives.name,
      encrypt(packet) {
        sendSlot.packetArea.set(packet);
        last = a.sealTransport(sendSlot, packet.length);
        return last;
      },
      lastDatagram: () => sendSlot.bytes.slice(0, last),
      decrypt(datagram) {
        receiveSlot.bytes.set(datagram);
        return Math.max(0, b.openTransport(receiveSlot, datagram.length));
      },
    };
  },
};

/** The reference path: Tunnel.encapsulate / decapsulate, a TunnelOutput per call. */
export const referenceDataPath: DataPathAdapter = {
  description: 'Tunnel.encapsulate/decapsulate (the reference path, TunnelOutput per call)',
  connect(primitives: Primitives = defaultPrimitives): DataPathPair {
    const { a, b } = connectedTunnels(primitives);
    let last: Uint8Array = new Uint8Array(0);
    return {
      backend: primitives.name,
      encrypt(packet) {
        const out = a.encapsulate(packet);
        if (out.network.length !== 1) return 0;
        last = out.network[0]!;
        return last.length;
      },
      lastDatagram: () => last.slice(),
      decrypt(datagram) {
        const out = b.decapsulate(datagram);
        return out.tunnel === null ? 0 : out.tunnel.length;
      },
    };
  },
};

/** Both paths, the fast one first; benchmarks report each. */
export const dataPaths: readonly DataPathAdapter[] = [fastDataPath, referenceDataPath];
