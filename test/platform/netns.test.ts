/**
 * withNetns and the namespace moves: the work lands in the target namespace,
 * the process's own threads never leave theirs, the namespace fd stays pinned
 * while the callback runs (so a container init exiting mid-way does not
 * matter), and moveLinkIntoNetns*AndRename moves and renames in one request.
 *
 * Needs root; fails (never skips) without it.
 */
import { closeSync, openSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { cleanup, ip, leftovers, registerCleanup, requireRoot, startIn, uniqueName, waitUntil } from '../../scripts/lib/netns.js';
import { IoError, NetlinkError, NotFoundError, PlatformError } from '../../src/platform/errors.js';
import * as netlink from '../../src/platform/netlink/index.js';
import { withNetns, withNetnsFd } from '../../src/platform/netns.js';
import { linkOf, randSuffix, scratchNamespace, withOpenFd, type Scratch } from './netlink-helpers.js';

const made: Scratch[] = [];
function fresh(): Scratch {
  const s = scratchNamespace();
  made.push(s);
  return s;
}

beforeAll(() => requireRoot('the netns suite'));
afterEach(() => {
  for (const s of made.splice(0)) s.remove();
});
afterAll(() => {
  cleanup();
  expect(leftovers()).toEqual([]);
});

const ownNamespace = (): string => readlinkSync('/proc/thread-self/ns/net');

/** Start `sleep 60` inside the scratch namespace and wait until it is really in there (ip netns exec enters it after the fork). */
async function sleeperIn(s: Scratch): Promise<ReturnType<typeof startIn>> {
  const sleeper = startIn(s.name, 'sleep', ['60']);
  const want = `net:[${statSync(s.path).ino}]`;
  await waitUntil(() => {
    try {
      return readlinkSync(`/proc/${sleeper.pid}/ns/net`) === want;
    } catch {
      return false;
    }
  }, `sleep to enter ${s.name}`);
  return sleeper;
}
const openFds = (): number => readdirSync('/proc/self/fd').length;

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('withNetns', () => {
  test('acts inside the namespace and leaves the main thread where it was', async () => {
    const s = fresh();
    const before = ownNamespace();
    const suffix = randSuffix();
    const seen = await s.run(async (ns) => {
      expect(ownNamespace()).toBe(before); // the callback runs on the main thread, which never moved
      await ns.createVethPair(`vh-${suffix}`, `vp-${suffix}`);
      return (await ns.listAllLinks()).map((l) => l.name).sort();
    });
    expect(ownNamespace()).toBe(before);
    expect(seen).toEqual(['lo', `vh-${suffix}`, `vp-${suffix}`]);
    expect(linkOf(s, `vh-${suffix}`)).toBeDefined();
    expect(await netlink.linkExists(`vh-${suffix}`)).toBe(false);
  });

  test('accepts a pid, { pid }, { fd } and { path }; returns the callback\'s value', async () => {
    const s = fresh();
    const sleeper = await sleeperIn(s);
    try {
      const index = (name: string) => async (ns: netlink.Rtnetlink) => (await ns.listAllLinks()).map((l) => l.name);
      expect(await withNetns(sleeper.pid, index('a'))).toEqual(['lo']);
      expect(await withNetns({ pid: sleeper.pid }, index('b'))).toEqual(['lo']);
      expect(await withNetns({ path: s.path }, index('c'))).toEqual(['lo']);
      await withOpenFd(s.path, async (fd) => {
        expect(await withNetns({ fd }, index('d'))).toEqual(['lo']);
        expect(await withNetnsFd(fd, index('e'))).toEqual(['lo']);
        // A borrowed fd stays open.
        expect(readlinkSync(`/proc/self/fd/${fd}`)).toBe(s.path);
      });
      expect(await withNetns({ path: s.path }, () => 42)).toBe(42);
    } finally {
      await sleeper.stop();
    }
  });

  test('pins the namespace: work goes on after the process that owned it has exited', async () => {
    // A namespace that only this process holds (no /run/netns bind mount).
    const owner = startIn(null, 'unshare', ['--net', 'sleep', '60']);
    await waitUntil(() => {
      try {
        return readlinkSync(`/proc/${owner.pid}/ns/net`) !== ownNamespace();
      } catch {
        return false;
      }
    }, 'unshare to enter its new namespace');
    const suffix = randSuffix();
    const result = await withNetns(owner.pid, async (ns) => {
      await owner.stop();
      // Reopening the procfs path now fails ...
      expect(() => closeSync(openSync(`/proc/${owner.pid}/ns/net`, 'r'))).toThrow();
      // ... but the pinned namespace is still there to work in.
      await ns.createBridge(`zlb-${suffix}`);
      await ns.setLinkUpByName('lo');
      await ns.addAddressToLinkByName(`zlb-${suffix}`, '10.80.0.1', 24);
      return {
        links: (await ns.listAllLinks()).map((l) => l.name).sort(),
        forward: await ns.readSysctl('net.ipv4.ip_forward'),
      };
    });
    expect(result).toEqual({ links: ['lo', `zlb-${suffix}`], forward: '0' });
    // And now, with nothing pinning it, opening it by pid is an IoError.
    const error = await rejection(withNetns(owner.pid, () => 1));
    expect(error).toBeInstanceOf(IoError);
    expect((error as IoError).code).toBe('ENOENT');
    expect((error as Error).message).toContain(`/proc/${owner.pid}/ns/net`);
  });

  test('errors: missing namespace file (IoError), a non-namespace fd (setns EINVAL), bad pid; callback errors pass through', async () => {
    const missing = await rejection(withNetns({ path: '/run/netns/tswg-no-such-ns' }, () => 1));
    expect(missing).toBeInstanceOf(IoError);
    expect((missing as IoError).code).toBe('ENOENT');

    const devNull = openSync('/dev/null', 'r');
    try {
      const notNs = await rejection(withNetns({ fd: devNull }, () => 1));
      expect(notNs).toBeInstanceOf(NetlinkError);
      expect((notNs as NetlinkError).errno).toBe(22);
      expect((notNs as Error).message).toContain('setns(ns_fd) failed');
    } finally {
      closeSync(devNull);
    }
    expect(await rejection(withNetns(-5, () => 1))).toBeInstanceOf(IoError);
    expect(await rejection(withNetns({ fd: -1 }, () => 1))).toBeInstanceOf(NetlinkError);

    const s = fresh();
    const thrown = new Error('from the callback');
    expect(await rejection(s.run(async () => Promise.reject(thrown)))).toBe(thrown);
    const notFound = await rejection(s.run((ns) => ns.setLinkUpByName('zz-missing')));
    expect(notFound).toBeInstanceOf(NotFoundError);
    expect((notFound as Error).message).toContain(`network namespace ${s.path}`);
  });

  test('releases its socket, worker and fd every time; the context is dead afterwards', async () => {
    const s = fresh();
    await s.run((ns) => ns.listAllLinks()); // warm up lazy loads
    const before = openFds();
    let kept: netlink.Rtnetlink | null = null;
    for (let i = 0; i < 20; i++) {
      await s.run(async (ns) => {
        kept = ns;
        await ns.linkExists('lo');
      });
      await rejection(s.run(async () => Promise.reject(new Error('boom'))));
    }
    expect(openFds()).toBe(before);
    const late = await rejection(kept!.listAllLinks());
    expect(late).toBeInstanceOf(NetlinkError);
    expect((late as NetlinkError).code).toBe('EBADF');
    const lateSysctl = await rejection((kept as unknown as { readSysctl(k: string): Promise<string> }).readSysctl('net.ipv4.ip_forward'));
    expect(lateSysctl).toBeInstanceOf(PlatformError);
  });

  test('two namespaces at once stay apart', async () => {
    const a = fresh();
    const b = fresh();
    const suffix = randSuffix();
    await Promise.all([
      a.run(async (ns) => {
        await ns.createBridge(`zla-${suffix}`);
        await ns.setSysctl('net.ipv4.ip_forward', '1');
      }),
      b.run(async (ns) => ns.createBridge(`zlb-${suffix}`)),
    ]);
    expect(linkOf(a, `zla-${suffix}`)).toBeDefined();
    expect(linkOf(a, `zlb-${suffix}`)).toBeUndefined();
    expect(linkOf(b, `zlb-${suffix}`)).toBeDefined();
    expect(a.exec('cat', '/proc/sys/net/ipv4/ip_forward').trim()).toBe('1');
    expect(b.exec('cat', '/proc/sys/net/ipv4/ip_forward').trim()).toBe('0');
  });
});

describe('moving links between namespaces', () => {
  test('moveLinkIntoNetnsFdAndRename: moved and renamed in one step; NotFound for a missing link', async () => {
    const a = fresh();
    const b = fresh();
    const suffix = randSuffix();
    await withOpenFd(b.path, (fdB) =>
      a.run(async (ns) => {
        await ns.createVethPair(`vh-${suffix}`, `vc-${suffix}`);
        await ns.moveLinkIntoNetnsFdAndRename(`vc-${suffix}`, fdB, 'eth0');
        await expectNotFoundOf(ns.moveLinkIntoNetnsFdAndRename(`vc-${suffix}`, fdB, 'eth1'), `vc-${suffix}`);
      }),
    );
    expect(linkOf(a, `vc-${suffix}`)).toBeUndefined();
    expect(linkOf(b, 'eth0')?.linkinfo?.info_kind).toBe('veth');
    expect(linkOf(b, `vc-${suffix}`)).toBeUndefined();
    // The pair still joins the two namespaces.
    expect(ip(a.name, '-j', 'link', 'show', `vh-${suffix}`)).toContain('"link_netnsid"');
  });

  test('moveLinkIntoNetnsAndRename by pid; a name taken in the target is EEXIST (the kernel has moved the link under its old name)', async () => {
    const a = fresh();
    const b = fresh();
    const sleeper = await sleeperIn(b);
    const suffix = randSuffix();
    try {
      await a.run(async (ns) => {
        await ns.createVethPair(`vh-${suffix}`, `vc-${suffix}`);
        await ns.moveLinkIntoNetnsAndRename(`vc-${suffix}`, sleeper.pid, 'eth1');
        await ns.createVethPair(`vh2-${suffix}`, `vc2-${suffix}`);
        const clash = await rejection(ns.moveLinkIntoNetnsAndRename(`vc2-${suffix}`, sleeper.pid, 'eth1'));
        expect(clash).toBeInstanceOf(NetlinkError);
        expect((clash as NetlinkError).errno).toBe(17);
        expect((clash as Error).message).toContain('new_name=eth1');
        // What the kernel does (6.x, and `ip link set DEV netns NS name TAKEN` alike):
        // the move completes, the rename fails; the link sits in the target under its old name.
        expect(await ns.linkExists(`vc2-${suffix}`)).toBe(false);
        const noProc = await rejection(ns.moveLinkIntoNetnsAndRename(`vh2-${suffix}`, 0x3ffffff0, 'eth2'));
        expect(noProc).toBeInstanceOf(IoError);
      });
      expect(linkOf(b, 'eth1')).toBeDefined();
      expect(linkOf(b, `vc2-${suffix}`)).toBeDefined();
      expect(linkOf(a, `vc-${suffix}`)).toBeUndefined();
      expect(linkOf(a, `vh2-${suffix}`)).toBeDefined();
    } finally {
      await sleeper.stop();
    }
  });

  test('module-level move from the process\'s own namespace into a scratch one', async () => {
    const b = fresh();
    const suffix = randSuffix();
    const host = uniqueName();
    const peer = `vc-${suffix}`;
    await netlink.createVethPair(host, peer);
    registerCleanup('link', `delete veth ${host}`, () => {
      if (JSON.parse(ip(null, '-j', 'link', 'show')).some((l: { ifname: string }) => l.ifname === host)) ip(null, 'link', 'delete', host);
    });
    try {
      await withOpenFd(b.path, (fd) => netlink.moveLinkIntoNetnsFdAndRename(peer, fd, 'eth0'));
      expect(await netlink.linkExists(peer)).toBe(false);
      expect(linkOf(b, 'eth0')).toBeDefined();
    } finally {
      await netlink.deleteLinkByName(host);
      await netlink.deleteLinkByName(peer);
    }
    expect(await netlink.linkExists(host)).toBe(false);
  });
});

async function expectNotFoundOf(promise: Promise<unknown>, name: string): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(NotFoundError);
  expect((error as Error).message).toContain(`'${name}'`);
}
