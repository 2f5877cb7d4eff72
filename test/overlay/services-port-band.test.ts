/**
 * DedicatedPortAllocator: globalPort+1 … globalPort+64, lowest free first,
 * cut at 65535; recorded ports stay reserved, in the band or not.
 */
import { describe, expect, it } from 'vitest';
import { DEDICATED_PORT_BAND_SIZE, DEFAULT_WG_PORT } from '../../src/overlay/constants.js';
import { OverlayError } from '../../src/overlay/errors.js';
import { DedicatedPortAllocator } from '../../src/overlay/services/port-band.js';

describe('DedicatedPortAllocator', () => {
  it('hands out the band just above the global port, lowest first, then reports exhaustion', () => {
    const ports = new DedicatedPortAllocator(51820);
    expect([ports.firstPort, ports.lastPort]).toEqual([51821, 51820 + DEDICATED_PORT_BAND_SIZE]);
    const got = Array.from({ length: DEDICATED_PORT_BAND_SIZE }, () => ports.allocate());
    expect(got[0]).toBe(51821);
    expect(got[DEDICATED_PORT_BAND_SIZE - 1]).toBe(51884);
    expect(new Set(got).size).toBe(DEDICATED_PORT_BAND_SIZE);
    expect(() => ports.allocate()).toThrow(OverlayError);
    expect(() => ports.allocate()).toThrow('dedicated port band 51821-51884 is exhausted');
  });

  it('release makes a port free again (the lowest free one comes first); release is idempotent', () => {
    const ports = new DedicatedPortAllocator(51820);
    const [a, b, c] = [ports.allocate(), ports.allocate(), ports.allocate()];
    ports.release(b);
    ports.release(b);
    ports.release(12345); // never handed out
    expect(ports.inUse()).toEqual([a, c]);
    expect(ports.allocate()).toBe(b);
    ports.release(a);
    ports.release(c);
    expect(ports.allocate()).toBe(a);
  });

  it('recorded ports are reserved, those outside the band too', () => {
    const ports = new DedicatedPortAllocator(51820, [51821, 51823, 40000]);
    expect(ports.inUse()).toEqual([40000, 51821, 51823]);
    expect(ports.allocate()).toBe(51822);
    expect(ports.allocate()).toBe(51824);
    ports.reserve(51825);
    ports.reserve(51825); // idempotent
    expect(ports.allocate()).toBe(51826);
    expect(ports.inUse()).toEqual([40000, 51821, 51822, 51823, 51824, 51825, 51826]);
  });

  it('a kernel-chosen global port (0) bases the band on the default WireGuard port', () => {
    const ports = new DedicatedPortAllocator(0);
    expect(ports.basePort).toBe(DEFAULT_WG_PORT);
    expect(ports.allocate()).toBe(DEFAULT_WG_PORT + 1);
  });

  it('ports above 65535 are cut from the band', () => {
    const ports = new DedicatedPortAllocator(65530);
    expect(Array.from({ length: 5 }, () => ports.allocate())).toEqual([65531, 65532, 65533, 65534, 65535]);
    expect(() => ports.allocate()).toThrow('dedicated port band 65531-65535 is exhausted');
    expect(() => new DedicatedPortAllocator(65535).allocate()).toThrow('dedicated port band above 65535 is empty');
  });

  it('refuses invalid ports', () => {
    for (const bad of [-1, 65536, 1.5, Number.NaN]) expect(() => new DedicatedPortAllocator(bad)).toThrow(OverlayError);
    expect(() => new DedicatedPortAllocator(51820, [0])).toThrow('invalid dedicated port 0');
    expect(() => new DedicatedPortAllocator(51820).reserve(70000)).toThrow(OverlayError);
  });
});
