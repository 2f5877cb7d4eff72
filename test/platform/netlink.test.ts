/**
 * The RTNETLINK helpers against the real kernel, each inside a scratch
 * network namespace of its own (made with `ip netns add`, driven through
 * withNetns), with every effect checked against `ip -j` output.
 *
 * First the cases an overlay node meets every day (a missing link named in
 * the error, veth pairs, bridges, addresses, routes), with one end of a veth
 * pair where a dummy link would do (this kernel has no dummy driver), then
 * every other helper.
 *
 * Needs root; fails (never skips) without it.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { cleanup, ip, leftovers, requireRoot } from '../../scripts/lib/netns.js';
import { NetlinkError, NotFoundError } from '../../src/platform/errors.js';
import * as netlink from '../../src/platform/netlink/index.js';
import { IFF_UP, RT_SCOPE_LINK, RT_TABLE_MAIN } from '../../src/platform/netlink/constants.js';
import { linkOf, randSuffix, scratchNamespace, type IpAddr, type IpLink, type IpRoute, type Scratch } from './netlink-helpers.js';

let scratch: Scratch;

beforeAll(() => requireRoot('the netlink suite'));
afterEach(() => scratch?.remove());
afterAll(() => {
  cleanup();
  expect(leftovers()).toEqual([]);
});

function fresh(): Scratch {
  scratch = scratchNamespace();
  return scratch;
}

const exists = (s: Scratch, name: string): boolean => linkOf(s, name) !== undefined;
const addrCount = (s: Scratch, name: string): number => s.json<IpAddr[]>('addr', 'show', 'dev', name)[0]?.addr_info.length ?? 0;
const sysfs = (s: Scratch, path: string): string => s.exec('cat', path).trim();

async function expectNotFound(promise: Promise<unknown>, name: string): Promise<void> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(NotFoundError);
  expect((error as Error).message).toContain(`'${name}'`);
}

async function expectNetlinkErrno(promise: Promise<unknown>, errno: number, text?: string): Promise<NetlinkError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(NetlinkError);
  expect((error as NetlinkError).errno).toBe(errno);
  expect((error as NetlinkError).operation).not.toBe('');
  if (text !== undefined) expect((error as Error).message).toContain(text);
  return error as NetlinkError;
}

describe('what an overlay node relies on', () => {
  test('set_mtu_on_missing_link_errors_cleanly: NotFound naming the link, here and in a namespace', async () => {
    await expectNotFound(netlink.setLinkMtuByName('zl-no-such-iface-xyz', 1420), 'zl-no-such-iface-xyz');
    const s = fresh();
    await s.run(async (ns) => {
      await expectNotFound(ns.setLinkMtuByName('zl-no-such-iface-xyz', 1420), 'zl-no-such-iface-xyz');
      await expectNotFound(ns.setLinkMtuByName('zl-nosuch0', 1420), 'zl-nosuch0');
    });
  });

  test('bridge_create_idempotent: create, create, delete, delete all succeed', async () => {
    const s = fresh();
    const name = `zlb-${randSuffix()}`;
    await s.run(async (ns) => {
      await ns.createBridge(name);
      expect(linkOf(s, name)?.linkinfo?.info_kind).toBe('bridge');
      expect(s.exec('ls', '/sys/class/net').split(/\s+/)).toContain(name);
      await ns.createBridge(name);
      expect(s.json<IpLink[]>('link', 'show').filter((l) => l.ifname === name)).toHaveLength(1);
      await ns.deleteBridge(name);
      expect(exists(s, name)).toBe(false);
      expect(s.exec('ls', '/sys/class/net').split(/\s+/)).not.toContain(name);
      await ns.deleteBridge(name);
    });
  });

  test('bridge_address_flush_removes_stale_then_single_readd', async () => {
    const s = fresh();
    const name = `zlb-${randSuffix()}`;
    await s.run(async (ns) => {
      await ns.createBridge(name);
      await ns.addAddressToLinkByName(name, '10.9.0.1', 28);
      await ns.addAddressToLinkByName(name, '10.9.1.1', 26);
      expect(addrCount(s, name)).toBeGreaterThanOrEqual(2);
      const index = linkOf(s, name)!.ifindex;
      expect((await ns.dumpAddresses(index)).map((a) => `${a.address}/${a.prefixLength}`).sort()).toEqual(['10.9.0.1/28', '10.9.1.1/26']);
      await ns.flushAddressesOnLinkByName(name);
      expect(addrCount(s, name)).toBe(0);
      expect(await ns.dumpAddresses(index)).toEqual([]);
      // The link stays down, so no IPv6 link-local address comes back.
      await ns.addAddressToLinkByName(name, '10.9.1.1', 26);
      expect(addrCount(s, name)).toBe(1);
      const [info] = s.json<IpAddr[]>('addr', 'show', 'dev', name)[0]!.addr_info;
      expect(info).toMatchObject({ family: 'inet', local: '10.9.1.1', prefixlen: 26 });
      await ns.deleteBridge(name);
    });
  });

  test('flush_addresses_on_absent_link_is_ok', async () => {
    const s = fresh();
    await s.run((ns) => ns.flushAddressesOnLinkByName(`zlb-${randSuffix()}`));
    await netlink.flushAddressesOnLinkByName(`zlb-${randSuffix()}`); // absent here too: nothing touched
  });

  test('bridge_add_link_membership: the member\'s master is the bridge (veth end for the dummy)', async () => {
    const s = fresh();
    const suffix = randSuffix();
    const bridge = `zlb-${suffix}`;
    const member = `zld-${suffix}`;
    await s.run(async (ns) => {
      await ns.createBridge(bridge);
      await ns.createVethPair(member, `zlp-${suffix}`);
      await ns.addLinkToBridge(member, bridge);
      expect(linkOf(s, member)?.master).toBe(bridge);
      expect(sysfs(s, `/sys/class/net/${member}/master/ifindex`)).toBe(sysfs(s, `/sys/class/net/${bridge}/ifindex`));
      await expectNotFound(ns.addLinkToBridge(member, 'zlb-missing'), 'zlb-missing');
      await expectNotFound(ns.addLinkToBridge('zld-missing', bridge), 'zld-missing');
      await ns.deleteLinkByName(member);
      await ns.deleteBridge(bridge);
    });
  });

  test('bridge_member_count_counts_brif_entries: 0, then 1', async () => {
    const s = fresh();
    const suffix = randSuffix();
    const bridge = `zlb-${suffix}`;
    const member = `zld-${suffix}`;
    await s.run(async (ns) => {
      await ns.createBridge(bridge);
      expect(await ns.bridgeMemberCount(bridge)).toBe(0);
      expect(s.exec('ls', `/sys/class/net/${bridge}/brif`)).toBe('');
      await ns.createVethPair(member, `zlp-${suffix}`);
      await ns.addLinkToBridge(member, bridge);
      expect(await ns.bridgeMemberCount(bridge)).toBe(1);
      expect(s.exec('ls', `/sys/class/net/${bridge}/brif`).trim()).toBe(member);
      // Absent, and not a bridge: 0.
      expect(await ns.bridgeMemberCount('zlb-missing')).toBe(0);
      expect(await ns.bridgeMemberCount(member)).toBe(0);
      await ns.deleteLinkByName(member);
      await ns.deleteBridge(bridge);
    });
  });

  test('bridge_stp_off: stp_state reads 0 (after being turned on)', async () => {
    const s = fresh();
    const name = `zlb-${randSuffix()}`;
    await s.run(async (ns) => {
      await ns.createBridge(name);
      await ns.setBridgeStp(name, true);
      expect(sysfs(s, `/sys/class/net/${name}/bridge/stp_state`)).not.toBe('0');
      expect(linkOf(s, name)?.linkinfo?.info_data?.stp_state).not.toBe(0);
      await ns.setBridgeStp(name, false);
      expect(sysfs(s, `/sys/class/net/${name}/bridge/stp_state`)).toBe('0');
      expect(linkOf(s, name)?.linkinfo?.info_data?.stp_state).toBe(0);
      await expectNotFound(ns.setBridgeStp('zlb-missing', false), 'zlb-missing');
      await ns.deleteBridge(name);
    });
  });

  test('teardown_deletes_route_veth_and_bridge: route -> veth -> bridge, again, then the whole cycle once more', async () => {
    const s = fresh();
    for (let round = 0; round < 2; round++) {
      const suffix = randSuffix();
      const vethHost = `vh-${suffix}`;
      const vethPeer = `vp-${suffix}`;
      const bridge = `zlb-${suffix}`;
      const routePresent = (): boolean => s.json<IpRoute[]>('route', 'show', '10.222.0.7/32', 'dev', vethHost).length > 0;
      await s.run(async (ns) => {
        await ns.createVethPair(vethHost, vethPeer);
        await ns.createBridge(bridge);
        // Up first: the kernel refuses a route through a down device
        // (ENETDOWN, "Device for nexthop is not up"); in the daemon the host veth is up.
        await ns.setLinkUpByName(vethHost);
        await ns.replaceRouteViaDev('10.222.0.7', 32, vethHost);
        expect(routePresent()).toBe(true);
        expect(exists(s, vethHost)).toBe(true);
        expect(exists(s, bridge)).toBe(true);

        await ns.deleteRouteViaDev('10.222.0.7', 32, vethHost);
        expect(routePresent()).toBe(false);
        await ns.deleteLinkByName(vethHost);
        await ns.deleteLinkByName(bridge);
        // Idempotent: everything again.
        await ns.deleteRouteViaDev('10.222.0.7', 32, vethHost);
        await ns.deleteLinkByName(vethHost);
        await ns.deleteLinkByName(bridge);
      });
      expect(s.json<IpRoute[]>('route', 'show', '10.222.0.7/32')).toEqual([]);
      expect(exists(s, vethHost)).toBe(false);
      expect(exists(s, vethPeer)).toBe(false);
      expect(exists(s, bridge)).toBe(false);
    }
  });
});

describe('links', () => {
  test('linkExists, listAllLinks and dumpLinks agree with ip -j link', async () => {
    const s = fresh();
    const suffix = randSuffix();
    await s.run(async (ns) => {
      await ns.createVethPair(`va-${suffix}`, `vb-${suffix}`);
      await ns.createBridge(`zlb-${suffix}`);
      expect(await ns.linkExists(`va-${suffix}`)).toBe(true);
      expect(await ns.linkExists('lo')).toBe(true);
      expect(await ns.linkExists(`nope-${suffix}`)).toBe(false);
      expect(await ns.linkExists('a-name-longer-than-15-bytes')).toBe(false);
      expect(await ns.linkExists('')).toBe(false);

      const expected = s.json<IpLink[]>('link', 'show').map((l) => ({ index: l.ifindex, name: l.ifname }));
      expect(await ns.listAllLinks()).toEqual(expected);

      const links = await ns.dumpLinks();
      for (const link of s.json<IpLink[]>('-d', 'link', 'show')) {
        const entry = links.find((l) => l.index === link.ifindex)!;
        expect(entry.name).toBe(link.ifname);
        expect(entry.mtu).toBe(link.mtu);
        expect((entry.flags & IFF_UP) !== 0).toBe(link.flags.includes('UP'));
        expect(entry.kind).toBe(link.linkinfo?.info_kind);
      }
    });
    // The process's own namespace does not see the scratch links.
    expect(await netlink.linkExists(`va-${suffix}`)).toBe(false);
  });

  test('createVethPair makes both ends here; EEXIST is an error naming both', async () => {
    const s = fresh();
    const suffix = randSuffix();
    const host = `vh-${suffix}`;
    const peer = `vp-${suffix}`;
    await s.run(async (ns) => {
      await ns.createVethPair(host, peer);
      expect(linkOf(s, host)?.linkinfo?.info_kind).toBe('veth');
      expect(linkOf(s, host)?.link).toBe(peer);
      expect(linkOf(s, peer)?.link).toBe(host);
      const error = await expectNetlinkErrno(ns.createVethPair(host, peer), 17, 'veth pair already exists');
      expect(error.message).toContain(`host=${host}`);
      expect(error.message).toContain(`peer=${peer}`);
      await expectNetlinkErrno(ns.createVethPair('bad/name', peer), 22, 'invalid interface name');
      await expectNetlinkErrno(ns.createVethPair('x'.repeat(16), peer), 22);
    });
  });

  test('createBridge succeeds over an existing non-bridge link (no kind check: an existing name is taken as done)', async () => {
    const s = fresh();
    const suffix = randSuffix();
    await s.run(async (ns) => {
      await ns.createVethPair(`vh-${suffix}`, `vp-${suffix}`);
      await ns.createBridge(`vh-${suffix}`);
      expect(linkOf(s, `vh-${suffix}`)?.linkinfo?.info_kind).toBe('veth');
    });
  });

  test('setLinkUpByName / setLinkMtuByName change the link; NotFound when absent', async () => {
    const s = fresh();
    const suffix = randSuffix();
    await s.run(async (ns) => {
      await ns.createVethPair(`vh-${suffix}`, `vp-${suffix}`);
      expect(linkOf(s, `vh-${suffix}`)?.flags).not.toContain('UP');
      await ns.setLinkUpByName(`vh-${suffix}`);
      expect(linkOf(s, `vh-${suffix}`)?.flags).toContain('UP');
      await ns.setLinkMtuByName(`vh-${suffix}`, 1420);
      expect(linkOf(s, `vh-${suffix}`)?.mtu).toBe(1420);
      await expectNotFound(ns.setLinkUpByName(`zz-${suffix}`), `zz-${suffix}`);
      await expectNotFound(ns.setLinkMtuByName(`zz-${suffix}`, 1400), `zz-${suffix}`);
      await expectNetlinkErrno(ns.setLinkMtuByName(`vh-${suffix}`, 10), 22, 'mtu');
      await expectNetlinkErrno(ns.setLinkMtuByName(`vh-${suffix}`, -1), 22);
    });
  });

  test('deleteLinkByName removes the pair and is idempotent', async () => {
    const s = fresh();
    const suffix = randSuffix();
    await s.run(async (ns) => {
      await ns.createVethPair(`vh-${suffix}`, `vp-${suffix}`);
      await ns.deleteLinkByName(`vp-${suffix}`);
      expect(exists(s, `vh-${suffix}`)).toBe(false);
      expect(exists(s, `vp-${suffix}`)).toBe(false);
      await ns.deleteLinkByName(`vp-${suffix}`);
      await ns.deleteLinkByName('a-name-longer-than-15-bytes');
    });
  });
});

describe('addresses', () => {
  test('addAddressToLinkByName adds IPv4 and IPv6; a duplicate is EEXIST; dumpAddresses matches ip -j addr', async () => {
    const s = fresh();
    const suffix = randSuffix();
    const dev = `vh-${suffix}`;
    await s.run(async (ns) => {
      await ns.createVethPair(dev, `vp-${suffix}`);
      await ns.addAddressToLinkByName(dev, '10.60.0.1', 24);
      await ns.addAddressToLinkByName(dev, 'fd00:60::1', 64);
      await ns.addAddressToLinkByName(dev, '10.60.1.1', 32);
      const infos = s.json<IpAddr[]>('addr', 'show', 'dev', dev)[0]!.addr_info;
      expect(infos.map((a) => `${a.local}/${a.prefixlen}`).sort()).toEqual(['10.60.0.1/24', '10.60.1.1/32', 'fd00:60::1/64']);
      expect(infos.find((a) => a.local === '10.60.0.1')?.broadcast).toBe('10.60.0.255');
      const error = await expectNetlinkErrno(ns.addAddressToLinkByName(dev, '10.60.0.1', 24), 17);
      expect(error.message).toContain(dev);
      expect(error.message).toContain('10.60.0.1/24');
      await expectNotFound(ns.addAddressToLinkByName(`zz-${suffix}`, '10.60.0.2', 24), `zz-${suffix}`);
      await expectNetlinkErrno(ns.addAddressToLinkByName(dev, '10.60.0.300', 24), 22, 'not an IPv4 or IPv6 address');
      await expectNetlinkErrno(ns.addAddressToLinkByName(dev, '10.60.0.2', 33), 22, 'prefix length');

      const all = await ns.dumpAddresses();
      const fromIp = s.json<IpAddr[]>('addr', 'show').flatMap((link) =>
        link.addr_info.map((a) => ({ index: link.ifindex, address: a.local, prefixLength: a.prefixlen, family: a.family === 'inet' ? 4 : 6 })),
      );
      const key = (a: { index: number; address: string }): string => `${a.index} ${a.address}`;
      const ours = all.map((a) => ({ index: a.index, address: a.address, prefixLength: a.prefixLength, family: a.family }));
      expect(ours.sort((x, y) => key(x).localeCompare(key(y)))).toEqual(fromIp.sort((x, y) => key(x).localeCompare(key(y))));
      const index = linkOf(s, dev)!.ifindex;
      expect((await ns.dumpAddresses(index)).every((a) => a.index === index)).toBe(true);
      expect((await ns.dumpAddresses(index)).length).toBe(3);
    });
  });

  test('flush removes IPv4 secondaries and IPv6 addresses of an up link, and only that link\'s', async () => {
    const s = fresh();
    const suffix = randSuffix();
    const a = `vh-${suffix}`;
    const b = `vp-${suffix}`;
    await s.run(async (ns) => {
      await ns.createVethPair(a, b);
      await ns.addAddressToLinkByName(a, '10.61.0.1', 24);
      await ns.addAddressToLinkByName(a, '10.61.0.2', 24); // a secondary: goes with the primary
      await ns.addAddressToLinkByName(a, 'fd00:61::1', 64);
      await ns.addAddressToLinkByName(b, '10.61.0.9', 24);
      await ns.setLinkUpByName(a);
      await ns.setLinkUpByName(b);
      await ns.flushAddressesOnLinkByName(a);
      // An up link may get its IPv6 link-local back at once; every address we added is gone.
      const left = s.json<IpAddr[]>('addr', 'show', 'dev', a)[0]!.addr_info.filter((i) => i.scope !== 'link');
      expect(left).toEqual([]);
      expect(addrCount(s, b)).toBeGreaterThanOrEqual(1);
      expect(s.json<IpAddr[]>('addr', 'show', 'dev', b)[0]!.addr_info.some((i) => i.local === '10.61.0.9')).toBe(true);
    });
  });

  test('deleteAddressFromLinkByName removes exactly one address; an absent address or link is success', async () => {
    const s = fresh();
    const suffix = randSuffix();
    const dev = `vh-${suffix}`;
    await s.run(async (ns) => {
      await ns.createVethPair(dev, `vp-${suffix}`);
      await ns.addAddressToLinkByName(dev, '10.62.0.1', 24);
      await ns.addAddressToLinkByName(dev, '10.62.0.7', 32);
      await ns.addAddressToLinkByName(dev, 'fd00:62::7', 128);
      await ns.deleteAddressFromLinkByName(dev, '10.62.0.7', 32);
      await ns.deleteAddressFromLinkByName(dev, 'fd00:62::7', 128);
      const left = s.json<IpAddr[]>('addr', 'show', 'dev', dev)[0]!.addr_info.filter((i) => i.scope !== 'link');
      expect(left.map((a) => `${a.local}/${a.prefixlen}`)).toEqual(['10.62.0.1/24']);
      await ns.deleteAddressFromLinkByName(dev, '10.62.0.7', 32);
      await ns.deleteAddressFromLinkByName(`zz-${suffix}`, '10.62.0.7', 32);
      await expectNetlinkErrno(ns.deleteAddressFromLinkByName(dev, '10.62.0.300', 32), 22, 'not an IPv4 or IPv6 address');
    });
  });
});

describe('routes', () => {
  async function upPair(ns: netlink.Rtnetlink, suffix: string): Promise<{ dev: string; peer: string }> {
    const dev = `vh-${suffix}`;
    const peer = `vp-${suffix}`;
    await ns.createVethPair(dev, peer);
    await ns.setLinkUpByName(dev);
    await ns.setLinkUpByName(peer);
    return { dev, peer };
  }

  test('addRouteViaDev (v4 and v6): link scope, main table, oif; EEXIST surfaced; NotFound for a missing dev', async () => {
    const s = fresh();
    const suffix = randSuffix();
    await s.run(async (ns) => {
      const { dev } = await upPair(ns, suffix);
      await ns.addRouteViaDev('10.70.0.0', 24, dev);
      await ns.addRouteViaDev('fd00:70::', 64, dev);
      await ns.addRouteViaDev('10.70.9.9', 32, dev);
      expect(s.json<IpRoute[]>('route', 'show', '10.70.0.0/24')).toMatchObject([{ dst: '10.70.0.0/24', dev, scope: 'link', protocol: 'static' }]);
      expect(s.json<IpRoute[]>('route', 'show', '10.70.9.9')).toMatchObject([{ dst: '10.70.9.9', dev, scope: 'link' }]);
      expect(s.json<IpRoute[]>('-6', 'route', 'show', 'fd00:70::/64')).toMatchObject([{ dst: 'fd00:70::/64', dev }]);
      await expectNetlinkErrno(ns.addRouteViaDev('10.70.0.0', 24, dev), 17, `route add 10.70.0.0/24 dev ${dev}`);
      await expectNotFound(ns.addRouteViaDev('10.70.1.0', 24, `zz-${suffix}`), `zz-${suffix}`);
      await expectNetlinkErrno(ns.addRouteViaDev('10.70.1.1', 24, dev), 22); // host bits set: the kernel refuses

      const index = linkOf(s, dev)!.ifindex;
      const routes = await ns.dumpRoutes(4);
      expect(routes.find((r) => r.dst === '10.70.0.0')).toMatchObject({ family: 4, dstPrefixLength: 24, table: RT_TABLE_MAIN, oif: index, scope: RT_SCOPE_LINK, priority: 0 });
      const v6 = await ns.dumpRoutes(6);
      expect(v6.find((r) => r.dst === 'fd00:70::')).toMatchObject({ family: 6, dstPrefixLength: 64, table: RT_TABLE_MAIN, oif: index });
      expect(v6.every((r) => r.family === 6)).toBe(true);
    });
  });

  test('dumpRoutes matches ip -j route show table all', async () => {
    const s = fresh();
    const suffix = randSuffix();
    await s.run(async (ns) => {
      const { dev } = await upPair(ns, suffix);
      await ns.addAddressToLinkByName(dev, '10.71.0.1', 24);
      await ns.addAddressToLinkByName(dev, 'fd00:71::1', 64);
      await ns.addDefaultRouteViaGateway('10.71.0.254');
      for (const family of [4, 6] as const) {
        const ours = (await ns.dumpRoutes(family)).map((r) => `${r.type === 1 ? '' : r.type}|${r.dst ?? 'default'}${r.dst !== undefined && r.dstPrefixLength !== (family === 4 ? 32 : 128) ? `/${r.dstPrefixLength}` : ''}|${r.gateway ?? ''}`);
        const types: Record<string, number> = { local: 2, broadcast: 3, multicast: 5, anycast: 4 };
        const theirs = s
          .json<IpRoute[]>(`-${family}`, 'route', 'show', 'table', 'all')
          .map((r) => `${r.type !== undefined && r.type !== 'unicast' ? types[r.type] ?? r.type : ''}|${r.dst}|${r.gateway ?? ''}`);
        expect(ours.sort()).toEqual(theirs.sort());
      }
      const def = (await ns.dumpRoutes(4)).find((r) => r.dstPrefixLength === 0 && r.table === RT_TABLE_MAIN);
      expect(def).toMatchObject({ gateway: '10.71.0.254', oif: linkOf(s, dev)!.ifindex });
      expect(def?.dst).toBeUndefined();
    });
  });

  test('addDefaultRouteViaDev (v4, v6) is a link-scope default route out of the device', async () => {
    const s = fresh();
    const suffix = randSuffix();
    await s.run(async (ns) => {
      const { dev } = await upPair(ns, suffix);
      await ns.addDefaultRouteViaDev(dev, false);
      await ns.addDefaultRouteViaDev(dev, true);
      expect(s.json<IpRoute[]>('-4', 'route', 'show', 'default')).toMatchObject([{ dst: 'default', dev, scope: 'link' }]);
      expect(s.json<IpRoute[]>('-6', 'route', 'show', 'default')).toMatchObject([{ dst: 'default', dev }]);
      await expectNetlinkErrno(ns.addDefaultRouteViaDev(dev, false), 17, `default route add v4 via ${dev}`);
      await expectNotFound(ns.addDefaultRouteViaDev(`zz-${suffix}`, true), `zz-${suffix}`);
    });
  });

  test('addDefaultRouteViaGateway (v4, v6): family from the gateway, no device given', async () => {
    const s = fresh();
    const suffix = randSuffix();
    await s.run(async (ns) => {
      const { dev } = await upPair(ns, suffix);
      await ns.addAddressToLinkByName(dev, '10.72.0.1', 24);
      await ns.addAddressToLinkByName(dev, 'fd00:72::1', 64);
      await ns.addDefaultRouteViaGateway('10.72.0.254');
      await ns.addDefaultRouteViaGateway('fd00:72::fe');
      expect(s.json<IpRoute[]>('-4', 'route', 'show', 'default')).toMatchObject([{ dst: 'default', gateway: '10.72.0.254', dev }]);
      expect(s.json<IpRoute[]>('-6', 'route', 'show', 'default')).toMatchObject([{ dst: 'default', gateway: 'fd00:72::fe', dev }]);
      await expectNetlinkErrno(ns.addDefaultRouteViaGateway('10.72.0.254'), 17, 'via gateway 10.72.0.254');
      await expectNetlinkErrno(ns.addDefaultRouteViaGateway('10.99.0.1'), 101); // unreachable gateway
      await expectNetlinkErrno(ns.addDefaultRouteViaGateway('not-an-ip'), 22);
    });
  });

  test('replaceRouteViaDev creates, replaces (no EEXIST), sets the source; a v4/v6 mismatch fails before the kernel', async () => {
    const s = fresh();
    const suffix = randSuffix();
    await s.run(async (ns) => {
      const { dev, peer } = await upPair(ns, suffix);
      await ns.addAddressToLinkByName(dev, '10.73.0.1', 24);
      await ns.addAddressToLinkByName(dev, '10.73.0.2', 24);
      await ns.replaceRouteViaDev('10.73.5.5', 32, dev);
      await ns.replaceRouteViaDev('10.73.5.5', 32, dev);
      expect(s.json<IpRoute[]>('route', 'show', '10.73.5.5')).toMatchObject([{ dst: '10.73.5.5', dev, scope: 'link' }]);
      await ns.replaceRouteViaDev('10.73.5.5', 32, dev, '10.73.0.2');
      expect(s.json<IpRoute[]>('route', 'show', '10.73.5.5')).toMatchObject([{ dst: '10.73.5.5', dev, prefsrc: '10.73.0.2' }]);
      // Replace moves it to another device.
      await ns.replaceRouteViaDev('10.73.5.5', 32, peer);
      expect(s.json<IpRoute[]>('route', 'show', '10.73.5.5')).toMatchObject([{ dst: '10.73.5.5', dev: peer }]);
      expect(s.json<IpRoute[]>('route', 'show', '10.73.5.5')).toHaveLength(1);
      await ns.replaceRouteViaDev('fd00:73::5', 128, dev);
      expect(s.json<IpRoute[]>('-6', 'route', 'show', 'fd00:73::5')).toMatchObject([{ dst: 'fd00:73::5', dev }]);
      await expectNetlinkErrno(ns.replaceRouteViaDev('10.73.6.6', 32, dev, 'fd00::1'), 22, 'address family mismatch');
      await expectNetlinkErrno(ns.replaceRouteViaDev('fd00::6', 128, `zz-${suffix}`, '10.0.0.1'), 22, 'address family mismatch');
      await expectNotFound(ns.replaceRouteViaDev('10.73.6.6', 32, `zz-${suffix}`), `zz-${suffix}`);
    });
  });

  test('deleteRouteViaDev: removes ours and one `ip route add` made; absent route or device is success', async () => {
    const s = fresh();
    const suffix = randSuffix();
    await s.run(async (ns) => {
      const { dev, peer } = await upPair(ns, suffix);
      await ns.addRouteViaDev('10.74.0.0', 24, dev);
      await ns.addRouteViaDev('fd00:74::', 64, dev);
      s.ip('route', 'add', '10.74.1.0/24', 'dev', dev); // proto boot
      await ns.deleteRouteViaDev('10.74.0.0', 24, dev);
      await ns.deleteRouteViaDev('fd00:74::', 64, dev);
      await ns.deleteRouteViaDev('10.74.1.0', 24, dev);
      expect(s.json<IpRoute[]>('route', 'show', 'root', '10.74.0.0/16')).toEqual([]);
      expect(s.json<IpRoute[]>('-6', 'route', 'show', 'fd00:74::/64')).toEqual([]);
      // Only the route via that device goes.
      await ns.addRouteViaDev('10.74.2.0', 24, peer);
      await ns.deleteRouteViaDev('10.74.2.0', 24, dev);
      expect(s.json<IpRoute[]>('route', 'show', '10.74.2.0/24')).toHaveLength(1);
      await ns.deleteRouteViaDev('10.74.0.0', 24, dev);
      await ns.deleteRouteViaDev('10.74.0.0', 24, `zz-${suffix}`);
      await expectNetlinkErrno(ns.deleteRouteViaDev('10.74.0.0', 40, dev), 22);
    });
  });
});

describe('the process\'s own namespace', () => {
  test('read-only dumps work without withNetns and match ip -j', async () => {
    const ours = (await netlink.listAllLinks()).map((l) => l.name).sort();
    const theirs = (JSON.parse(ip(null, '-j', 'link', 'show')) as IpLink[]).map((l) => l.ifname).sort();
    expect(ours).toEqual(theirs);
    expect((await netlink.dumpRoutes(4)).every((r) => r.family === 4)).toBe(true);
    expect((await netlink.dumpAddresses()).length).toBeGreaterThan(0);
    expect(await netlink.linkExists('lo')).toBe(true);
    expect(await netlink.bridgeMemberCount(`zlb-${randSuffix()}`)).toBe(0);
    await netlink.deleteLinkByName(`zlb-${randSuffix()}`);
    await netlink.deleteRouteViaDev('10.222.0.7', 32, `vh-${randSuffix()}`);
  });
});
