/**
 * Physical-egress detection (src/platform/egress.ts).
 *
 * - Unprivileged: isVirtualInterface (its prefix list and what plain prefix
 *   matching implies), the pure selection
 *   (selectPhysicalEgress and its parts) over fake dumps, and
 *   detectPhysicalEgress with an injected source, logger and UDP-connect.
 * - Privileged (root; fails, never skips, without it): detectPhysicalEgress
 *   against the real kernel inside scratch namespaces built with `ip`, run
 *   by a small Node process started with `ip netns exec` against the built
 *   dist/ (run `npm run build` first) so that the default wiring (RTNETLINK
 *   and UDP-connect of the process's own namespace) is what runs; the key
 *   scenario also in-process through withNetns(); and detection in the
 *   test's own namespace, whatever it holds.
 */
import { readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  VIRTUAL_INTERFACE_PREFIXES,
  defaultRoutes,
  detectPhysicalEgress,
  isVirtualInterface,
  primaryGlobalAddress,
  selectPhysicalEgress,
  udpConnectLocalAddress,
  type EgressAddress,
  type EgressLink,
  type EgressRoute,
  type EgressSource,
} from '../../src/platform/egress.js';
import { NetworkConfigError, PlatformError } from '../../src/platform/errors.js';
import { closeDefaultRtnetlink } from '../../src/platform/netlink/index.js';
import { withNetns } from '../../src/platform/netns.js';
import { cleanup, createNamespace, execIn, ip, leftovers, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { requireFreshDist } from '../helpers/fresh-dist.js';

// ---- fakes -----------------------------------------------------------------------

const IFF_UP = 0x1;
const IFF_RUNNING = 0x40;
const SCOPE_LINK = 253;
const SCOPE_HOST = 254;

function route(oif: number | undefined, priority: number, family: 4 | 6 = 4, extra: Partial<EgressRoute> = {}): EgressRoute {
  return { family, dstPrefixLength: 0, table: 254, oif, priority, ...extra };
}

function link(index: number, name: string, up = true): EgressLink {
  return { index, name, flags: up ? IFF_UP | IFF_RUNNING : 0 };
}

function addr(index: number, address: string, scope = 0): EgressAddress {
  return { index, family: address.includes(':') ? 6 : 4, address, scope };
}

const LO = link(1, 'lo');
const LO_ADDRESSES = [addr(1, '127.0.0.1', SCOPE_HOST), addr(1, '::1', SCOPE_HOST)];

// ---- isVirtualInterface (the prefix list and what prefix matching implies) ----------

describe('isVirtualInterface', () => {
  test('virtual_interfaces_are_detected', () => {
    for (const name of ['lo', 'lo0', 'wt0', 'wg0', 'zl-abc', 'zl-overlay0', 'utun3', 'tun0', 'tap0', 'docker0', 'br-1', 'veth9a2b', 'nb-wt']) {
      expect(isVirtualInterface(name), `expected '${name}' to be virtual`).toBe(true);
    }
  });

  test('physical_interfaces_are_not_virtual', () => {
    for (const name of ['eth0', 'en0', 'enp3s0', 'wlan0', 'wlp2s0', 'bond0']) {
      expect(isVirtualInterface(name), `expected '${name}' to be physical (non-virtual)`).toBe(false);
    }
  });

  test('empty_name_is_not_virtual', () => {
    expect(isVirtualInterface('')).toBe(false);
  });

  test('plain prefix matching: br0, virbr0, cni0, cali*, flannel.* are physical', () => {
    for (const name of ['br0', 'virbr0', 'cni0', 'cali1234abcd', 'flannel.1', 'ens5', 'eno1', 'bond0.100', 'enx001122334455']) {
      expect(isVirtualInterface(name), name).toBe(false);
    }
  });

  test('plain prefix matching: lowpan0, tunl0, nb* and every listed prefix are virtual', () => {
    for (const name of ['lowpan0', 'tunl0', 'nbr0', 'nb', 'wt', 'wg-mesh', 'zl-', 'utun', 'tun', 'tap', 'docker', 'br-', 'veth', 'loopback7', 'tap9']) {
      expect(isVirtualInterface(name), name).toBe(true);
    }
    // Case-sensitive, prefix only: not a substring match.
    for (const name of ['ETH0', 'LO', 'my-wt0', 'xveth0', 'br1', 'z-l0', 'tailscale0']) {
      expect(isVirtualInterface(name), name).toBe(false);
    }
  });

  test('the prefix list is exactly the VPN-mesh, container and tunnel prefixes', () => {
    expect([...VIRTUAL_INTERFACE_PREFIXES]).toEqual(['lo', 'wt', 'wg', 'zl-', 'utun', 'tun', 'tap', 'docker', 'br-', 'veth', 'nb']);
    expect(Object.isFrozen(VIRTUAL_INTERFACE_PREFIXES)).toBe(true);
  });
});

// ---- pure selection ---------------------------------------------------------------

describe('defaultRoutes', () => {
  test('keeps only prefix length 0, table 254 (main), with an output interface', () => {
    const routes = [
      route(2, 10),
      route(3, 0, 4, { dstPrefixLength: 24 }), // not a default route
      route(4, 0, 4, { table: 255 }), // local table
      route(5, 0, 4, { table: 1000 }), // a table > 255 (RTA_TABLE in the dump)
      route(6, 0, 4, { table: 252 }), // RT_TABLE_COMPAT: the header byte of a table > 255
      route(undefined, 0), // blackhole / multipath: no RTA_OIF
      route(7, 20, 6),
      route(8, 0, 6, { dstPrefixLength: 64 }),
    ];
    expect(defaultRoutes(routes)).toEqual([
      { family: 4, oif: 2, metric: 10 },
      { family: 6, oif: 7, metric: 20 },
    ]);
  });

  test('ascending metric; IPv4 before IPv6 on ties, whatever the input order; otherwise stable', () => {
    const routes = [route(11, 100, 6), route(12, 5, 6), route(1, 100), route(2, 5), route(3, 5), route(13, 5, 6), route(4, 0)];
    expect(defaultRoutes(routes).map((r) => r.oif)).toEqual([4, 2, 3, 12, 13, 1, 11]);
  });

  test('metric 0 (RTA_PRIORITY absent) sorts first; large u32 metrics sort correctly', () => {
    const routes = [route(1, 0xffffffff), route(2, 0x80000000), route(3, 0)];
    expect(defaultRoutes(routes).map((r) => r.oif)).toEqual([3, 2, 1]);
  });
});

describe('primaryGlobalAddress', () => {
  test('scope universe only; first IPv4, else first IPv6', () => {
    const addresses = [
      addr(2, 'fe80::1', SCOPE_LINK),
      addr(2, '2001:db8::1'),
      addr(2, '169.254.1.1', SCOPE_LINK),
      addr(2, '2001:db8::2'),
      addr(2, '192.0.2.1'),
      addr(2, '192.0.2.2'),
      addr(3, '198.51.100.1'),
    ];
    expect(primaryGlobalAddress(addresses, 2)).toBe('192.0.2.1');
    expect(primaryGlobalAddress(addresses.filter((a) => a.family === 6), 2)).toBe('2001:db8::1');
    expect(primaryGlobalAddress(addresses, 3)).toBe('198.51.100.1');
    expect(primaryGlobalAddress(addresses, 4)).toBeUndefined();
    expect(primaryGlobalAddress([addr(2, 'fe80::1', SCOPE_LINK), addr(2, '10.0.0.1', SCOPE_HOST)], 2)).toBeUndefined();
  });

  test('private (RFC 1918) and ULA addresses count: only the scope matters', () => {
    expect(primaryGlobalAddress([addr(2, '10.1.2.3')], 2)).toBe('10.1.2.3');
    expect(primaryGlobalAddress([addr(2, 'fd00::5')], 2)).toBe('fd00::5');
  });
});

describe('selectPhysicalEgress', () => {
  test('a mesh interface owning the lowest-metric default route loses to the physical one', () => {
    const links = [LO, link(2, 'eth0'), link(3, 'wt0')];
    const addresses = [...LO_ADDRESSES, addr(2, '192.0.2.10'), addr(3, '100.64.0.2')];
    const routes = [route(3, 0), route(2, 100)];
    expect(selectPhysicalEgress(routes, links, addresses)).toEqual({
      egress: { interface: 'eth0', ip: '192.0.2.10' },
      via: 'default-route',
      v4DefaultRoutes: 2,
      totalDefaultRoutes: 2,
    });
  });

  test('every virtual prefix is skipped as a route output interface', () => {
    const names = ['lo', 'wt0', 'wg0', 'zl-overlay0', 'utun3', 'tun0', 'tap0', 'docker0', 'br-1', 'veth9a2b', 'nb-wt', 'tunl0', 'lowpan0'];
    const links = names.map((name, i) => link(i + 10, name));
    const addresses = names.map((_, i) => addr(i + 10, `10.0.${i}.1`));
    const routes = names.map((_, i) => route(i + 10, i));
    links.push(link(99, 'enp3s0'));
    addresses.push(addr(99, '203.0.113.7'));
    routes.push(route(99, 1000));
    expect(selectPhysicalEgress(routes, links, addresses)?.egress).toEqual({ interface: 'enp3s0', ip: '203.0.113.7' });
  });

  test('bridges such as br0, virbr0, cni0 are not on the list: they count as physical and can win', () => {
    for (const name of ['br0', 'virbr0', 'cni0', 'cali0', 'flannel.1']) {
      const selection = selectPhysicalEgress([route(3, 0), route(2, 10)], [link(2, name), link(3, 'wg0')], [addr(2, '192.0.2.1'), addr(3, '10.8.0.1')]);
      expect(selection?.egress, name).toEqual({ interface: name, ip: '192.0.2.1' });
    }
  });

  test('the cheapest physical route wins among several', () => {
    const links = [link(2, 'eth0'), link(3, 'wlan0'), link(4, 'wt0')];
    const addresses = [addr(2, '192.0.2.10'), addr(3, '198.51.100.20'), addr(4, '100.64.0.2')];
    const routes = [route(2, 600), route(3, 300), route(4, 0)];
    expect(selectPhysicalEgress(routes, links, addresses)?.egress).toEqual({ interface: 'wlan0', ip: '198.51.100.20' });
  });

  test('routes outside the main table, non-default routes and routes without oif are ignored', () => {
    const links = [link(2, 'eth0'), link(3, 'eth1'), link(4, 'eth2'), link(5, 'eth3')];
    const addresses = [addr(2, '192.0.2.2'), addr(3, '192.0.2.3'), addr(4, '192.0.2.4'), addr(5, '192.0.2.5')];
    const routes = [
      route(3, 0, 4, { table: 1000 }),
      route(4, 0, 4, { dstPrefixLength: 1 }), // 0.0.0.0/1 is not a default route
      route(undefined, 0),
      route(5, 0, 4, { table: 255 }),
      route(2, 500),
    ];
    expect(selectPhysicalEgress(routes, links, addresses)).toMatchObject({
      egress: { interface: 'eth0', ip: '192.0.2.2' },
      via: 'default-route',
      totalDefaultRoutes: 1,
    });
  });

  test('a route whose link vanished (or has no name) is skipped', () => {
    const links = [link(2, 'eth0'), link(4, '')];
    const addresses = [addr(2, '192.0.2.10'), addr(3, '192.0.2.99'), addr(4, '192.0.2.44')];
    expect(selectPhysicalEgress([route(3, 0), route(4, 1), route(2, 10)], links, addresses)).toMatchObject({
      egress: { interface: 'eth0', ip: '192.0.2.10' },
      via: 'default-route',
    });
  });

  test('a physical route output interface without a global address is skipped for the next route', () => {
    const links = [link(2, 'eth0'), link(3, 'eth1')];
    const addresses = [addr(2, 'fe80::1', SCOPE_LINK), addr(2, '169.254.0.9', SCOPE_LINK), addr(3, '2001:db8::3')];
    expect(selectPhysicalEgress([route(2, 0), route(3, 10, 6)], links, addresses)?.egress).toEqual({
      interface: 'eth1',
      ip: '2001:db8::3',
    });
  });

  test('IPv4 is preferred on the chosen interface, even when reached through an IPv6 default route', () => {
    const links = [link(2, 'eth0')];
    const addresses = [addr(2, '2001:db8::10'), addr(2, '192.0.2.10')];
    expect(selectPhysicalEgress([route(2, 5, 6)], links, addresses)).toEqual({
      egress: { interface: 'eth0', ip: '192.0.2.10' },
      via: 'default-route',
      v4DefaultRoutes: 0,
      totalDefaultRoutes: 1,
    });
  });

  test('on equal metrics the IPv4 route wins, whatever the order of the dumps', () => {
    const links = [link(2, 'eth0'), link(3, 'eth1')];
    const addresses = [addr(2, '2001:db8::2'), addr(3, '192.0.2.3')];
    const routes = [route(2, 100, 6), route(3, 100, 4)];
    expect(selectPhysicalEgress(routes, links, addresses)?.egress.interface).toBe('eth1');
    expect(selectPhysicalEgress([...routes].reverse(), links, addresses)?.egress.interface).toBe('eth1');
  });

  test('the route path does not require the link to be UP', () => {
    expect(selectPhysicalEgress([route(2, 0)], [link(2, 'eth0', false)], [addr(2, '192.0.2.1')])?.egress).toEqual({
      interface: 'eth0',
      ip: '192.0.2.1',
    });
  });

  test('all default routes virtual: the first UP non-virtual link with a global address, in dump order', () => {
    const links = [
      LO,
      link(2, 'eth1', false), // down
      link(3, 'wg0'), // virtual
      link(4, 'eth2'), // up, no global address
      link(5, ''), // no name
      link(6, 'enp0s1'), // the winner
      link(7, 'eth0'), // later in the dump
    ];
    const addresses = [
      ...LO_ADDRESSES,
      addr(2, '192.0.2.2'),
      addr(3, '10.9.0.1'),
      addr(4, 'fe80::4', SCOPE_LINK),
      addr(5, '192.0.2.5'),
      addr(6, '2001:db8::6'),
      addr(6, '198.51.100.6'),
      addr(7, '192.0.2.7'),
    ];
    const routes = [route(3, 0), route(3, 0, 6), route(8, 5) /* vanished */];
    expect(selectPhysicalEgress(routes, links, addresses)).toEqual({
      egress: { interface: 'enp0s1', ip: '198.51.100.6' },
      via: 'up-link',
      v4DefaultRoutes: 2,
      totalDefaultRoutes: 3,
    });
  });

  test('no default route at all: the link scan still finds the physical interface', () => {
    expect(selectPhysicalEgress([], [LO, link(2, 'eth0')], [...LO_ADDRESSES, addr(2, '192.0.2.1')])).toEqual({
      egress: { interface: 'eth0', ip: '192.0.2.1' },
      via: 'up-link',
      v4DefaultRoutes: 0,
      totalDefaultRoutes: 0,
    });
  });

  test('nothing usable: null (loopback, mesh, down or address-less links only)', () => {
    const links = [LO, link(2, 'wt0'), link(3, 'eth0', false), link(4, 'eth1')];
    const addresses = [...LO_ADDRESSES, addr(2, '100.64.0.2'), addr(3, '192.0.2.3'), addr(4, 'fe80::4', SCOPE_LINK)];
    expect(selectPhysicalEgress([route(2, 0)], links, addresses)).toBeNull();
    expect(selectPhysicalEgress([], [], [])).toBeNull();
  });
});

// ---- detectPhysicalEgress with injected I/O -------------------------------------------

interface FakeDumps {
  v4?: EgressRoute[];
  v6?: EgressRoute[];
  links?: EgressLink[];
  addresses?: EgressAddress[];
}

function fakeSource(dumps: FakeDumps, failures: Partial<Record<'routes' | 'links' | 'addresses', Error>> = {}): EgressSource & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    dumpRoutes: async (family) => {
      calls.push(`routes(${family})`);
      if (failures.routes) throw failures.routes;
      return family === 4 ? (dumps.v4 ?? []) : (dumps.v6 ?? []);
    },
    dumpLinks: async () => {
      calls.push('links()');
      if (failures.links) throw failures.links;
      return dumps.links ?? [];
    },
    dumpAddresses: async (index) => {
      calls.push(`addresses(${index ?? ''})`);
      if (failures.addresses) throw failures.addresses;
      return (dumps.addresses ?? []).filter((a) => index === undefined || a.index === index);
    },
  };
}

function recorder(): { warn: (message: string) => void; warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, warn: (message) => warnings.push(message) };
}

const noUdp = async (family: 4 | 6): Promise<string> => {
  throw new Error(`udp-connect IPv${family} must not be used`);
};

describe('detectPhysicalEgress (injected dumps)', () => {
  test('the physical default route wins silently; both route families are dumped', async () => {
    const logger = recorder();
    const source = fakeSource({
      v4: [route(3, 0), route(2, 100)],
      v6: [route(3, 0, 6)],
      links: [LO, link(2, 'eth0'), link(3, 'wt0')],
      addresses: [...LO_ADDRESSES, addr(2, '192.0.2.10'), addr(3, '100.64.0.2')],
    });
    await expect(detectPhysicalEgress({ source, logger, udpConnect: noUdp })).resolves.toEqual({ interface: 'eth0', ip: '192.0.2.10' });
    expect(source.calls).toEqual(expect.arrayContaining(['routes(4)', 'routes(6)', 'links()']));
    expect(logger.warnings).toEqual([]);
  });

  test('a dump of the wrong family is not counted twice (kernels without IPv6 answer with everything)', async () => {
    const logger = recorder();
    const v4 = [route(3, 0)];
    const source = fakeSource({ v4, v6: v4, links: [link(3, 'wt0'), link(4, 'eth0')], addresses: [addr(4, '192.0.2.4')] });
    await detectPhysicalEgress({ source, logger, udpConnect: noUdp });
    expect(logger.warnings).toHaveLength(1);
    expect(logger.warnings[0]).toContain('v4 default routes: 1, total default routes: 1');
  });

  test('an IPv6 route dump refused with EAFNOSUPPORT (IPv6 disabled) counts as empty; other failures do not', async () => {
    const source = fakeSource({ v4: [route(2, 0)], links: [link(2, 'eth0')], addresses: [addr(2, '192.0.2.2')] });
    const refused = (code: string): EgressSource => ({
      ...source,
      dumpRoutes: async (family) => {
        if (family === 6) throw new PlatformError('dump refused', code);
        return source.dumpRoutes(family);
      },
    });
    await expect(detectPhysicalEgress({ source: refused('EAFNOSUPPORT'), logger: recorder(), udpConnect: noUdp })).resolves.toEqual({
      interface: 'eth0',
      ip: '192.0.2.2',
    });
    await expect(detectPhysicalEgress({ source: refused('ENOBUFS'), logger: recorder(), udpConnect: noUdp })).rejects.toThrow(
      /^route dump failed: dump refused$/,
    );
  });

  test('link-scan fallback warns with the route counts', async () => {
    const logger = recorder();
    const source = fakeSource({
      v4: [route(3, 0)],
      v6: [route(3, 1, 6)],
      links: [LO, link(2, 'eth0'), link(3, 'wt0')],
      addresses: [...LO_ADDRESSES, addr(2, '192.0.2.10'), addr(3, '100.64.0.2')],
    });
    await expect(detectPhysicalEgress({ source, logger, udpConnect: noUdp })).resolves.toEqual({ interface: 'eth0', ip: '192.0.2.10' });
    expect(logger.warnings).toHaveLength(1);
    expect(logger.warnings[0]).toMatch(/all default routes egress through virtual\/mesh interfaces/);
    expect(logger.warnings[0]).toContain('v4 default routes: 1, total default routes: 2');
    expect(logger.warnings[0]).toContain("'eth0'");
  });

  test('UDP-connect fallback: empty interface name, IPv4 first, and a warning', async () => {
    const logger = recorder();
    const families: number[] = [];
    const source = fakeSource({ v4: [route(3, 0)], links: [LO, link(3, 'wt0')], addresses: [...LO_ADDRESSES, addr(3, '100.64.0.2')] });
    const udpConnect = async (family: 4 | 6): Promise<string> => {
      families.push(family);
      return '100.64.0.2';
    };
    await expect(detectPhysicalEgress({ source, logger, udpConnect })).resolves.toEqual({ interface: '', ip: '100.64.0.2' });
    expect(families).toEqual([4]);
    expect(logger.warnings).toHaveLength(1);
    expect(logger.warnings[0]).toMatch(/falling back to UDP-connect source IP 100\.64\.0\.2 \(may be a VPN-mesh address\)/);
  });

  test('UDP-connect fallback: IPv6 when IPv4 has no route', async () => {
    const logger = recorder();
    const families: number[] = [];
    const udpConnect = async (family: 4 | 6): Promise<string> => {
      families.push(family);
      if (family === 4) throw Object.assign(new Error('connect ENETUNREACH 8.8.8.8:80'), { code: 'ENETUNREACH' });
      return 'fd7a:115c::2';
    };
    await expect(detectPhysicalEgress({ source: fakeSource({}), logger, udpConnect })).resolves.toEqual({ interface: '', ip: 'fd7a:115c::2' });
    expect(families).toEqual([4, 6]);
    expect(logger.warnings).toHaveLength(1);
  });

  test('everything fails: NetworkConfigError with its fixed message and both causes', async () => {
    const logger = recorder();
    const udpConnect = async (family: 4 | 6): Promise<string> => {
      throw Object.assign(new Error(`connect ENETUNREACH (IPv${family})`), { code: 'ENETUNREACH' });
    };
    const error = await detectPhysicalEgress({ source: fakeSource({ links: [LO], addresses: LO_ADDRESSES }), logger, udpConnect }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NetworkConfigError);
    expect(error).toBeInstanceOf(PlatformError);
    const e = error as NetworkConfigError;
    expect(e.message).toMatch(/^no physical egress interface found and UDP-connect fallback failed: /);
    expect(e.message).toContain('IPv4');
    expect(e.message).toContain('IPv6');
    expect(e.code).toBe('ENETUNREACH');
    expect(logger.warnings).toEqual([]);
  });

  test.each([
    ['routes', /^route dump failed: boom/],
    ['links', /^link dump failed: boom/],
    ['addresses', /^address dump failed: boom/],
  ] as const)('a failing %s dump is a NetworkConfigError (%s)', async (which, message) => {
    const failure = new PlatformError('boom', 'EACCES');
    const error = await detectPhysicalEgress({ source: fakeSource({}, { [which]: failure }), logger: recorder(), udpConnect: noUdp }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NetworkConfigError);
    expect((error as NetworkConfigError).message).toMatch(message);
    expect((error as NetworkConfigError).code).toBe('EACCES');
    expect((error as NetworkConfigError).cause).toBe(failure);
  });
});

// ---- privileged: the real kernel in scratch namespaces ---------------------------------

const distEgress = new URL('../../dist/src/platform/egress.js', import.meta.url);

/** The modules the child process runs: egress detection and everything it imports. */
function egressModules(): string[] {
  const netlink = readdirSync(new URL('../../src/platform/netlink/', import.meta.url))
    .filter((file) => file.endsWith('.ts'))
    .map((file) => `platform/netlink/${file.slice(0, -3)}`);
  return ['platform/egress', 'platform/errors', 'platform/libc', ...netlink];
}

interface ChildResult {
  ok: boolean;
  egress?: { interface: string; ip: string };
  name?: string;
  message?: string;
  code?: string;
  warnings: string[];
}

const CHILD_SCRIPT = `
const { detectPhysicalEgress } = await import(process.env.TSWG_EGRESS_MODULE);
const warnings = [];
let result;
try {
  const egress = await detectPhysicalEgress({ logger: { warn: (message) => warnings.push(message) } });
  result = { ok: true, egress, warnings };
} catch (error) {
  result = { ok: false, name: error.name, message: error.message, code: error.code, warnings };
}
process.stdout.write(JSON.stringify(result) + '\\n');
process.exit(0); // the shared RTNETLINK socket stays open otherwise
`;

/** Run detectPhysicalEgress() (default RTNETLINK source, default UDP-connect) inside `namespace`. */
function detectIn(namespace: string): ChildResult {
  const out = execIn(namespace, process.execPath, ['--input-type=module', '-e', CHILD_SCRIPT], {
    env: { ...process.env, TSWG_EGRESS_MODULE: distEgress.href },
    timeoutMs: 20_000,
  });
  const line = out.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as ChildResult;
}

/** A veth pair inside `namespace`, both ends up; deleted with the namespace. */
function vethIn(namespace: string, name: string, peer: string, up = true): void {
  ip(namespace, 'link', 'add', name, 'type', 'veth', 'peer', 'name', peer);
  ip(namespace, 'link', 'set', 'dev', peer, 'up');
  if (up) ip(namespace, 'link', 'set', 'dev', name, 'up');
}

describe('detectPhysicalEgress in scratch namespaces (root)', () => {
  beforeAll(() => {
    requireRoot('the egress namespace tests');
    requireCommands('ip');
    requireFreshDist(egressModules());
  });

  afterAll(() => {
    closeDefaultRtnetlink(); // opened by the in-process test below
    cleanup();
    expect(leftovers()).toEqual([]);
  });

  /** wt0 owns the lowest-metric default routes (v4 and v6), eth0 higher-metric ones. */
  function meshOwnsTheDefaultRoute(): string {
    const ns = createNamespace();
    vethIn(ns, 'wt0', 'vethwt0p');
    vethIn(ns, 'eth0', 'vetheth0p');
    ip(ns, 'addr', 'add', '100.64.7.2/24', 'dev', 'wt0');
    ip(ns, 'addr', 'add', 'fd7a:115c:a1e0::2/64', 'dev', 'wt0', 'nodad');
    ip(ns, 'addr', 'add', '2001:db8:1::10/64', 'dev', 'eth0', 'nodad'); // listed before the IPv4 address
    ip(ns, 'addr', 'add', '192.0.2.10/24', 'dev', 'eth0');
    ip(ns, 'route', 'add', 'default', 'via', '100.64.7.1', 'dev', 'wt0', 'metric', '5');
    ip(ns, '-6', 'route', 'add', 'default', 'via', 'fd7a:115c:a1e0::1', 'dev', 'wt0', 'metric', '1');
    ip(ns, 'route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'eth0', 'metric', '100');
    ip(ns, '-6', 'route', 'add', 'default', 'via', '2001:db8:1::1', 'dev', 'eth0', 'metric', '50');
    // The UDP-connect trick would have reported the mesh address here:
    expect(ip(ns, 'route', 'get', '8.8.8.8')).toContain('dev wt0');
    return ns;
  }

  test('wt0 owns the lowest-metric default route, eth0 a higher one: eth0 and its global IPv4 win', () => {
    const ns = meshOwnsTheDefaultRoute();
    const result = detectIn(ns);
    expect(result).toEqual({ ok: true, egress: { interface: 'eth0', ip: '192.0.2.10' }, warnings: [] });
  });

  test('the same, in-process: the `ns` of withNetns() is an EgressSource', async () => {
    const ns = meshOwnsTheDefaultRoute();
    const logger = recorder();
    const egress = await withNetns({ path: `/run/netns/${ns}` }, (context) => detectPhysicalEgress({ source: context, logger, udpConnect: noUdp }));
    expect(egress).toEqual({ interface: 'eth0', ip: '192.0.2.10' });
    expect(logger.warnings).toEqual([]);
  });

  test('enp0s1 behind wg0 and tun-named links; a main-table route beats a cheaper one in table 1000 (RTA_TABLE)', () => {
    const ns = createNamespace();
    vethIn(ns, 'wg0', 'vethwg0p');
    vethIn(ns, 'eth1', 'vetheth1p');
    vethIn(ns, 'enp0s1', 'vethenp0p');
    vethIn(ns, 'eth2', 'vetheth2p');
    ip(ns, 'addr', 'add', '10.8.0.2/24', 'dev', 'wg0');
    ip(ns, 'addr', 'add', '198.51.100.11/24', 'dev', 'eth1');
    ip(ns, 'addr', 'add', '203.0.113.5/24', 'dev', 'enp0s1');
    ip(ns, 'addr', 'add', '192.0.2.12/24', 'dev', 'eth2');
    ip(ns, 'route', 'add', 'default', 'via', '10.8.0.1', 'dev', 'wg0'); // metric 0: no RTA_PRIORITY
    ip(ns, 'route', 'add', 'default', 'via', '198.51.100.1', 'dev', 'eth1', 'table', '1000'); // not the main table
    ip(ns, 'route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'eth2', 'metric', '600');
    ip(ns, 'route', 'add', 'default', 'via', '203.0.113.1', 'dev', 'enp0s1', 'metric', '300');
    ip(ns, 'route', 'add', '0.0.0.0/1', 'via', '198.51.100.1', 'dev', 'eth1'); // not a default route

    expect(detectIn(ns)).toEqual({ ok: true, egress: { interface: 'enp0s1', ip: '203.0.113.5' }, warnings: [] });
  });

  test('an IPv6-only physical interface: its first global IPv6 address, not the link-local one', () => {
    const ns = createNamespace();
    vethIn(ns, 'wt0', 'vethwt0p');
    vethIn(ns, 'eth0', 'vetheth0p');
    ip(ns, 'addr', 'add', '100.64.7.2/24', 'dev', 'wt0');
    ip(ns, 'addr', 'add', '2001:db8:2::10/64', 'dev', 'eth0', 'nodad');
    ip(ns, 'addr', 'add', '2001:db8:2::11/64', 'dev', 'eth0', 'nodad');
    ip(ns, 'route', 'add', 'default', 'via', '100.64.7.1', 'dev', 'wt0', 'metric', '0');
    ip(ns, '-6', 'route', 'add', 'default', 'via', '2001:db8:2::1', 'dev', 'eth0', 'metric', '1024');

    const result = detectIn(ns);
    expect(result.ok).toBe(true);
    expect(result.egress?.interface).toBe('eth0');
    // Both are global; the kernel lists the newest IPv6 address first.
    expect(['2001:db8:2::10', '2001:db8:2::11']).toContain(result.egress?.ip);
    expect(result.warnings).toEqual([]);
  });

  test('every default route through a mesh: the first UP non-virtual link with a global address, with a warning', () => {
    const ns = createNamespace();
    vethIn(ns, 'eth1', 'vetheth1p', false); // down, lower index: skipped
    vethIn(ns, 'wt0', 'vethwt0p');
    vethIn(ns, 'eth2', 'vetheth2p'); // up, link-local only
    vethIn(ns, 'enp0s1', 'vethenp0p');
    ip(ns, 'addr', 'add', '192.0.2.20/24', 'dev', 'eth1');
    ip(ns, 'addr', 'add', '100.64.7.2/24', 'dev', 'wt0');
    ip(ns, 'addr', 'add', '192.0.2.30/24', 'dev', 'enp0s1');
    ip(ns, 'route', 'add', 'default', 'via', '100.64.7.1', 'dev', 'wt0', 'metric', '10');

    const result = detectIn(ns);
    expect(result.ok).toBe(true);
    expect(result.egress).toEqual({ interface: 'enp0s1', ip: '192.0.2.30' });
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toContain('v4 default routes: 1, total default routes: 1');
  });

  test('nothing physical: the UDP-connect trick reports the mesh address with an empty interface name and a warning', () => {
    const ns = createNamespace();
    vethIn(ns, 'wt0', 'vethwt0p');
    ip(ns, 'addr', 'add', '100.64.7.2/24', 'dev', 'wt0');
    ip(ns, 'route', 'add', 'default', 'via', '100.64.7.1', 'dev', 'wt0');

    const result = detectIn(ns);
    expect(result.ok).toBe(true);
    expect(result.egress).toEqual({ interface: '', ip: '100.64.7.2' });
    expect(result.warnings).toHaveLength(1);
    expect(result.warnings[0]).toMatch(/may be a VPN-mesh address/);
  });

  test('an isolated namespace (loopback only): NetworkConfigError, UDP-connect fallback failed', () => {
    const ns = createNamespace();
    const result = detectIn(ns);
    expect(result.ok).toBe(false);
    expect(result.name).toBe('NetworkConfigError');
    expect(result.message).toMatch(/^no physical egress interface found and UDP-connect fallback failed: .*ENETUNREACH/);
    expect(result.warnings).toEqual([]);
  });

  test('udpConnectLocalAddress in the test namespace agrees with the kernel, or rejects', async () => {
    // Run here (not in a namespace): whatever the host's routes are, the
    // result must be a non-loopback source address, or an error with a code.
    for (const family of [4, 6] as const) {
      const outcome = await udpConnectLocalAddress(family).then(
        (address) => ({ address }),
        (error: unknown) => ({ error: error as NodeJS.ErrnoException }),
      );
      if ('address' in outcome) {
        expect(outcome.address).not.toMatch(/^(127\.|::1$|0\.0\.0\.0$|::$)/);
      } else {
        expect(typeof outcome.error.code).toBe('string');
      }
    }
  });

  // In the test's own namespace, whatever it holds: Ok must be a non-loopback IP and
  // a non-virtual interface (when named); Err (no egress at all) is accepted, since
  // a machine may have none, but must be the typed error.
  test('detect_physical_egress_on_linux', async () => {
    const logger = recorder();
    try {
      const egress = await detectPhysicalEgress({ logger });
      expect(egress.ip).not.toMatch(/^(127\.|::1$)/);
      if (egress.interface !== '') expect(isVirtualInterface(egress.interface), JSON.stringify(egress)).toBe(false);
    } catch (error) {
      expect(error).toBeInstanceOf(NetworkConfigError);
    }
  });
});
