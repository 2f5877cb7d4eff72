/** Real IPv4 packets for the in-process benchmarks (allowed-IPs lookups read the header). */
import { randomFillSync } from 'node:crypto';

/** An IPv4/UDP packet of `size` bytes from 198.19.0.1 to `destination` (4 bytes), random payload. */
export function ipv4Packet(size: number, destination: Uint8Array): Uint8Array {
  if (size < 28) throw new Error(`an IPv4/UDP packet needs at least 28 bytes, asked for ${size}`);
  const packet = new Uint8Array(size);
  randomFillSync(packet, 28);
  const view = new DataView(packet.buffer);
  view.setUint8(0, 0x45);
  view.setUint16(2, size);
  view.setUint8(8, 64); // TTL
  view.setUint8(9, 17); // UDP
  packet.set([198, 19, 0, 1], 12);
  packet.set(destination, 16);
  view.setUint16(20, 40000);
  view.setUint16(22, 5201);
  view.setUint16(24, size - 20);
  return packet;
}

/** The i-th address of 10.0.0.0/8 (i < 2^24), as 4 bytes. */
export function addressInTen(i: number): Uint8Array {
  return Uint8Array.of(10, (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
}
