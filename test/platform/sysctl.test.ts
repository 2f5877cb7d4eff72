/**
 * Sysctls through /proc/sys: read in the process's own namespace (never
 * written there), read and written inside scratch namespaces through
 * withNetns, checked with `ip netns exec NS cat /proc/sys/...`.
 *
 * Needs root; fails (never skips) without it.
 */
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { cleanup, leftovers, requireRoot } from '../../scripts/lib/netns.js';
import { IoError, PlatformError } from '../../src/platform/errors.js';
import { ipv6ForwardingPath, readSysctl, readSysctlSync, setSysctl, sysctlPath } from '../../src/platform/sysctl.js';
import { randSuffix, scratchNamespace, type Scratch } from './netlink-helpers.js';

const made: Scratch[] = [];
function fresh(): Scratch {
  const s = scratchNamespace();
  made.push(s);
  return s;
}

beforeAll(() => requireRoot('the sysctl suite'));
afterEach(() => {
  for (const s of made.splice(0)) s.remove();
});
afterAll(() => {
  cleanup();
  expect(leftovers()).toEqual([]);
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('keys and paths', () => {
  test('dotted and slash keys map onto /proc/sys; malformed keys are IoError', () => {
    expect(sysctlPath('net.ipv4.ip_forward')).toBe('/proc/sys/net/ipv4/ip_forward');
    expect(sysctlPath('net/ipv6/conf/eth0.100/forwarding')).toBe('/proc/sys/net/ipv6/conf/eth0.100/forwarding');
    expect(ipv6ForwardingPath('eth0.100')).toBe('/proc/sys/net/ipv6/conf/eth0.100/forwarding');
    for (const bad of ['', 'net..ipv4', 'net/../../etc/passwd', '.net', 'net/ipv4/']) {
      expect(() => sysctlPath(bad)).toThrow(IoError);
    }
    expect(() => ipv6ForwardingPath('../x')).toThrow(IoError);
    expect(() => ipv6ForwardingPath('all')).toThrow(PlatformError);
  });
});

describe('the process\'s own namespace (read only)', () => {
  test('readSysctl / readSysctlSync return the trimmed file content', async () => {
    const raw = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
    expect(await readSysctl('net.ipv4.ip_forward')).toBe(raw.trim());
    expect(readSysctlSync('net/ipv4/ip_forward')).toBe(raw.trim());
    expect(await readSysctl('kernel.ostype')).toBe('Linux');
  });

  test('a missing key is an IoError naming it; conf.all.forwarding is refused without writing', async () => {
    const missing = await rejection(readSysctl('net.ipv4.no_such_knob'));
    expect(missing).toBeInstanceOf(IoError);
    expect((missing as IoError).code).toBe('ENOENT');
    expect((missing as Error).message).toContain('net.ipv4.no_such_knob');
    const before = readFileSync('/proc/sys/net/ipv6/conf/all/forwarding', 'utf8');
    const refused = await rejection(setSysctl('net.ipv6.conf.all.forwarding', before.trim()));
    expect(refused).toBeInstanceOf(PlatformError);
    expect((refused as Error).message).toContain('per interface');
    expect(readFileSync('/proc/sys/net/ipv6/conf/all/forwarding', 'utf8')).toBe(before);
  });
});

describe('inside a scratch namespace', () => {
  test('ip_forward: read 0, set 1, seen by the namespace and not by the host', async () => {
    const s = fresh();
    const host = readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8');
    await s.run(async (ns) => {
      expect(await ns.readSysctl('net.ipv4.ip_forward')).toBe('0');
      await ns.setSysctl('net.ipv4.ip_forward', '1');
      expect(await ns.readSysctl('net.ipv4.ip_forward')).toBe('1');
    });
    expect(s.exec('cat', '/proc/sys/net/ipv4/ip_forward').trim()).toBe('1');
    expect(readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8')).toBe(host);
  });

  test('IPv6 forwarding per interface (veth, bridge, a dotted name); conf.all stays 0', async () => {
    const s = fresh();
    const suffix = randSuffix();
    const veth = `vh-${suffix}`;
    const bridge = `zlb-${suffix}`;
    const dotted = `v.${suffix}`;
    await s.run(async (ns) => {
      await ns.createVethPair(veth, dotted);
      await ns.createBridge(bridge);
      await ns.setIpv6Forwarding(veth, true);
      await ns.setSysctl(`net.ipv6.conf.${bridge}.forwarding`, '1');
      await ns.setIpv6Forwarding(dotted, true);
      expect(await ns.readSysctl(`net/ipv6/conf/${dotted}/forwarding`)).toBe('1');
      expect(await ns.readSysctl(`net.ipv6.conf.${veth}.forwarding`)).toBe('1');
      const refused = await rejection(ns.setSysctl('net.ipv6.conf.all.forwarding', '1'));
      expect(refused).toBeInstanceOf(PlatformError);
      expect(await rejection(ns.setIpv6Forwarding('all', true))).toBeInstanceOf(PlatformError);
      await ns.setIpv6Forwarding(dotted, false);
    });
    const read = (path: string): string => s.exec('cat', path).trim();
    expect(read(`/proc/sys/net/ipv6/conf/${veth}/forwarding`)).toBe('1');
    expect(read(`/proc/sys/net/ipv6/conf/${bridge}/forwarding`)).toBe('1');
    expect(read(`/proc/sys/net/ipv6/conf/${dotted}/forwarding`)).toBe('0');
    expect(read('/proc/sys/net/ipv6/conf/all/forwarding')).toBe('0');
    // The interface is the namespace's: the host has no such sysctl.
    expect((await rejection(readSysctl(`net.ipv6.conf.${veth}.forwarding`)) as IoError).code).toBe('ENOENT');
  });

  test('errors inside: a missing key or interface is an IoError naming key and namespace', async () => {
    const s = fresh();
    await s.run(async (ns) => {
      const missing = await rejection(ns.readSysctl('net.ipv6.conf.zz-missing.forwarding'));
      expect(missing).toBeInstanceOf(IoError);
      expect((missing as IoError).code).toBe('ENOENT');
      expect((missing as Error).message).toContain('net.ipv6.conf.zz-missing.forwarding');
      expect((missing as Error).message).toContain(s.path);
      const write = await rejection(ns.setIpv6Forwarding('zz-missing', true));
      expect(write).toBeInstanceOf(IoError);
      const readOnly = await rejection(ns.setSysctl('kernel.ostype', 'x'));
      expect(readOnly).toBeInstanceOf(IoError);
    });
  });
});
