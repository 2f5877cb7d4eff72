import { describe, expect, it } from 'vitest';
import { trimIpPacket } from '../../src/device/ip-packet.js';

function ipv4(totalLength: number, bufferLength = totalLength): Uint8Array {
  const p = new Uint8Array(bufferLength);
  p[0] = 0x45;
  p[2] = totalLength >> 8;
  p[3] = totalLength & 0xff;
  return p;
}

function ipv6(payloadLength: number, bufferLength = 40 + payloadLength): Uint8Array {
  const p = new Uint8Array(bufferLength);
  p[0] = 0x60;
  p[4] = payloadLength >> 8;
  p[5] = payloadLength & 0xff;
  return p;
}

describe('trimIpPacket', () => {
  it('strips padding by the IPv4 total length and the IPv6 payload length', () => {
    expect(trimIpPacket(ipv4(84, 96))!.length).toBe(84);
    expect(trimIpPacket(ipv6(64, 112))!.length).toBe(104);
    expect(trimIpPacket(ipv4(20))!.length).toBe(20);
  });

  it('refuses packets whose stated length does not fit, and non-IP bytes', () => {
    expect(trimIpPacket(ipv4(100, 96))).toBeNull();
    expect(trimIpPacket(ipv4(19, 32))).toBeNull();
    expect(trimIpPacket(ipv6(100, 96))).toBeNull();
    expect(trimIpPacket(new Uint8Array(0))).toBeNull();
    expect(trimIpPacket(new Uint8Array(10).fill(0x45))).toBeNull();
    expect(trimIpPacket(new Uint8Array(64).fill(0x50))).toBeNull();
  });

  it('never throws on random input', () => {
    for (let i = 0; i < 20_000; i++) {
      const p = new Uint8Array(Math.floor(Math.random() * 80)).map(() => Math.floor(Math.random() * 256));
      const out = trimIpPacket(p);
      if (out !== null) expect(out.length).toBeLessThanOrEqual(p.length);
    }
  });
});
