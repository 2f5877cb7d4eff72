/**
 * SO_BINDTODEVICE (src/platform/bind-to-device.ts).
 *
 * - Unprivileged checks: name validation happens before any system call,
 *   descriptor resolution errors.
 * - Root (fails, never skips, without it): pinning changes where datagrams
 *   go. Topology (fresh names and /30s from 198.18.0.0/16 every run):
 *
 *     test process (root namespace)
 *       hostA  sA.first  ----veth----  peerA in nsA: sA.second, UDP listener
 *       hostB  sB.first  ----veth----  peerB in nsB: sB.second AND sA.second, UDP listener
 *
 *   A datagram to sA.second:PORT follows the routing table to nsA; once the
 *   socket is pinned to hostB it leaves through hostB and reaches nsB.
 *   Errors: ENODEV (missing interface, or one in another namespace), other
 *   errnos (ENOTSOCK), and EPERM from a child running as nobody through
 *   setpriv (Linux >= 5.7 lets anyone pin an unpinned socket; changing or
 *   removing the pinning needs CAP_NET_RAW).
 */
import dgram from 'node:dgram';
import { closeSync, openSync } from 'node:fs';
import { release } from 'node:os';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { MAX_INTERFACE_NAME_BYTES, bindToDevice, boundDevice, socketDescriptor } from '../../src/platform/bind-to-device.js';
import { InterfaceNotFoundError, NetworkConfigError, PermissionDeniedError, PlatformError } from '../../src/platform/errors.js';
import { bindUdpSocket, type BoundUdpSocket } from '../../src/platform/udp-socket.js';
import {
  addressAndUp,
  cleanup,
  createNamespace,
  createVethPair,
  ip,
  leftovers,
  randomBenchmarkSubnet30,
  requireCommands,
  requireRoot,
  run,
  startIn,
  uniqueName,
  waitUntil,
  type NamespaceProcess,
  type Subnet30,
  type VethPair,
} from '../../scripts/lib/netns.js';
import { requireFreshDist } from '../helpers/fresh-dist.js';

function bindDgram(type: 'udp4' | 'udp6'): Promise<dgram.Socket> {
  const socket = dgram.createSocket(type);
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

function closeDgram(socket: dgram.Socket): Promise<void> {
  return new Promise((resolve) => socket.close(() => resolve()));
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error, none was thrown');
}

// ---- no privileges needed -----------------------------------------------------------

describe('bindToDevice: argument checks', () => {
  test('a name over 15 bytes is rejected before any system call', async () => {
    expect(MAX_INTERFACE_NAME_BYTES).toBe(15);
    const socket = await bindDgram('udp4');
    await closeDgram(socket); // a closed socket: any system call would fail differently
    for (const [name, bytes] of [
      ['tswgt-0123456789', 16],
      ['a-very-long-interface-name', 26],
      ['ééééééééé', 18], // 9 characters, 18 UTF-8 bytes
    ] as const) {
      const error = thrown(() => bindToDevice(socket, name));
      expect(error, name).toBeInstanceOf(NetworkConfigError);
      expect((error as Error).message).toBe(`interface name '${name}' too long for SO_BINDTODEVICE (${bytes} bytes, max 15)`);
      expect((error as PlatformError).code).toBeUndefined();
    }
    const nul = thrown(() => bindToDevice(socket, 'eth\0x'));
    expect(nul).toBeInstanceOf(NetworkConfigError);
    expect((nul as Error).message).toMatch(/contains a NUL byte/);
  });

  test('socket descriptors: bound sockets have one, unbound and closed ones a clear error', async () => {
    const unbound = dgram.createSocket('udp4');
    expect(() => socketDescriptor(unbound)).toThrow(/no descriptor yet: bind\(\) or connect\(\) it/);
    expect(() => bindToDevice(unbound, 'lo')).toThrow(NetworkConfigError);
    unbound.close();

    const socket = await bindDgram('udp4');
    const fd = socketDescriptor(socket);
    expect(fd).toBeGreaterThan(2);
    expect(socketDescriptor(fd)).toBe(fd);
    await closeDgram(socket);
    expect(() => socketDescriptor(socket)).toThrow(/the UDP socket is closed/);

    const bound = await bindUdpSocket(4, 0);
    expect(socketDescriptor(bound)).toBe(bound.fd);
    await closeDgram(bound.socket);
    // A closed BoundUdpSocket is not mistaken for its old (maybe reused) fd number.
    expect(() => socketDescriptor(bound)).toThrow(/closed/);

    for (const bad of [-1, 1.5, Number.NaN]) expect(() => socketDescriptor(bad)).toThrow(/invalid socket descriptor/);
  });

  test('reading the descriptor of a plain dgram.Socket prints no DEP0112 warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error): void => {
      warnings.push(warning);
    };
    process.on('warning', onWarning);
    try {
      const socket = await bindDgram('udp4');
      socketDescriptor(socket);
      expect(boundDevice(socket)).toBe('');
      await closeDgram(socket);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => (w as { code?: string }).code === 'DEP0112')).toEqual([]);
  });

  test('a descriptor that is not a socket: NetworkConfigError with the errno', () => {
    const fd = openSync('/dev/null', 'r');
    try {
      const error = thrown(() => bindToDevice(fd, 'lo'));
      expect(error).toBeInstanceOf(NetworkConfigError);
      expect((error as PlatformError).code).toBe('ENOTSOCK');
      expect((error as Error).message).toBe('SO_BINDTODEVICE(lo) failed: ENOTSOCK');
    } finally {
      closeSync(fd);
    }
  });
});

// ---- root -------------------------------------------------------------------------------

const PORT = 20000 + Math.floor(Math.random() * 40000);

const LISTENER = `
const socket = require('node:dgram').createSocket('udp4');
socket.on('message', (message) => process.stdout.write('got:' + message.toString() + '\\n'));
socket.bind(Number(process.env.TSWG_PORT), () => process.stdout.write('ready\\n'));
`;

/** Linux >= 5.7 lets an unprivileged process pin a socket that is not pinned yet. */
function unprivilegedFirstPinAllowed(): boolean {
  const [major = 0, minor = 0] = release().split(/[.-]/).map(Number);
  return major > 5 || (major === 5 && minor >= 7);
}

describe('bindToDevice against the kernel (root)', () => {
  let nsA: string;
  let nsB: string;
  let vethA: VethPair;
  let vethB: VethPair;
  let sA: Subnet30;
  let listenerA: NamespaceProcess;
  let listenerB: NamespaceProcess;

  beforeAll(async () => {
    requireRoot('the SO_BINDTODEVICE tests');
    requireCommands('ip', 'setpriv');
    requireFreshDist(['platform/bind-to-device', 'platform/errors', 'platform/libc']);
    nsA = createNamespace();
    nsB = createNamespace();
    vethA = createVethPair(nsA);
    vethB = createVethPair(nsB);
    sA = randomBenchmarkSubnet30();
    const sB = randomBenchmarkSubnet30();
    addressAndUp(null, vethA.host.name, `${sA.first}/30`);
    addressAndUp(nsA, vethA.peer.name, `${sA.second}/30`);
    addressAndUp(null, vethB.host.name, `${sB.first}/30`);
    addressAndUp(nsB, vethB.peer.name, `${sB.second}/30`);
    ip(nsB, 'addr', 'add', `${sA.second}/30`, 'dev', vethB.peer.name); // the same address behind the other link
    const env = { ...process.env, TSWG_PORT: String(PORT) };
    listenerA = startIn(nsA, process.execPath, ['-e', LISTENER], { env, name: 'listener A' });
    listenerB = startIn(nsB, process.execPath, ['-e', LISTENER], { env, name: 'listener B' });
    await waitUntil(() => listenerA.output().includes('ready') && listenerB.output().includes('ready'), 'the UDP listeners', 10_000);
  });

  afterAll(() => {
    cleanup();
    expect(leftovers()).toEqual([]);
  });

  /** Send `tag` to sA.second:PORT until `listener` reports it. */
  async function deliver(socket: dgram.Socket, tag: string, listener: NamespaceProcess): Promise<void> {
    await waitUntil(
      () => {
        if (listener.output().includes(`got:${tag}\n`)) return true;
        socket.send(tag, PORT, sA.second);
        return false;
      },
      `datagram ${tag} at ${listener.name}`,
      5000,
      200,
    );
  }

  test('pinning sends the datagrams out through the named interface (BoundUdpSocket)', async () => {
    const bound: BoundUdpSocket = await bindUdpSocket(4, 0);
    try {
      await deliver(bound.socket, 'unpinned', listenerA);
      bindToDevice(bound, vethB.host.name);
      expect(boundDevice(bound)).toBe(vethB.host.name);
      await deliver(bound.socket, 'pinned-b', listenerB);
      expect(listenerA.output()).not.toContain('got:pinned-b');
      // Root may re-pin and unpin.
      bindToDevice(bound, vethA.host.name);
      expect(boundDevice(bound)).toBe(vethA.host.name);
      await deliver(bound.socket, 'pinned-a', listenerA);
      bindToDevice(bound, '');
      expect(boundDevice(bound)).toBe('');
      await deliver(bound.socket, 'unpinned-again', listenerA);
      expect(listenerB.output()).not.toMatch(/got:(unpinned|pinned-a)/);
    } finally {
      await closeDgram(bound.socket);
    }
  });

  test('a plain node:dgram socket, a raw descriptor and an IPv6 socket can be pinned', async () => {
    const plain = await bindDgram('udp4');
    try {
      bindToDevice(plain, vethB.host.name);
      expect(boundDevice(plain)).toBe(vethB.host.name);
      await deliver(plain, 'plain-b', listenerB);
      expect(listenerA.output()).not.toContain('got:plain-b');
    } finally {
      await closeDgram(plain);
    }
    const byFd = await bindUdpSocket(4, 0);
    const v6 = await bindUdpSocket(6, 0);
    const v6plain = await bindDgram('udp6');
    try {
      bindToDevice(byFd.fd, vethA.host.name);
      expect(boundDevice(byFd.fd)).toBe(vethA.host.name);
      bindToDevice(v6, vethA.host.name);
      expect(boundDevice(v6)).toBe(vethA.host.name);
      bindToDevice(v6plain, 'lo');
      expect(boundDevice(v6plain)).toBe('lo');
    } finally {
      await Promise.all([closeDgram(byFd.socket), closeDgram(v6.socket), closeDgram(v6plain)]);
    }
  });

  test('a 15-byte interface name (the maximum) works', async () => {
    const name = uniqueName().padEnd(15, '_');
    expect(Buffer.byteLength(name)).toBe(15);
    const ns = createNamespace();
    createVethPair(ns, { hostName: name });
    const socket = await bindDgram('udp4');
    try {
      bindToDevice(socket, name);
      expect(boundDevice(socket)).toBe(name);
    } finally {
      await closeDgram(socket);
    }
  });

  test('ENODEV: a missing interface, or one in another namespace, is InterfaceNotFoundError', async () => {
    const socket = await bindDgram('udp4');
    try {
      for (const name of [uniqueName(), vethA.peer.name]) {
        const error = thrown(() => bindToDevice(socket, name));
        expect(error, name).toBeInstanceOf(InterfaceNotFoundError);
        expect((error as PlatformError).code).toBe('ENODEV');
        expect((error as Error).message).toContain(name);
      }
      expect(boundDevice(socket)).toBe('');
    } finally {
      await closeDgram(socket);
    }
  });

  test('without CAP_NET_RAW (uid nobody): changing or removing a pinning is PermissionDeniedError', () => {
    const script = `
      const { bindToDevice, boundDevice } = await import(process.env.TSWG_BIND_MODULE);
      const dgram = (await import('node:dgram')).default;
      const socket = dgram.createSocket('udp4');
      await new Promise((resolve) => socket.bind(0, resolve));
      const out = { uid: process.getuid() };
      const attempt = (label, fn) => {
        try { out[label] = { ok: true, value: fn() ?? null }; }
        catch (error) { out[label] = { ok: false, name: error.name, code: error.code, message: error.message }; }
      };
      attempt('missing', () => bindToDevice(socket, process.env.TSWG_MISSING));
      attempt('first', () => { bindToDevice(socket, 'lo'); return boundDevice(socket); });
      attempt('repin', () => bindToDevice(socket, process.env.TSWG_OTHER));
      attempt('unpin', () => bindToDevice(socket, ''));
      attempt('missingAfter', () => bindToDevice(socket, process.env.TSWG_MISSING));
      attempt('still', () => boundDevice(socket));
      socket.close();
      process.stdout.write(JSON.stringify(out) + '\\n');
    `;
    const missing = uniqueName();
    const output = run(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '--input-type=module', '-e', script],
      {
        env: {
          ...process.env,
          TSWG_BIND_MODULE: new URL('../../dist/src/platform/bind-to-device.js', import.meta.url).href,
          TSWG_MISSING: missing,
          TSWG_OTHER: vethA.host.name,
        },
        timeoutMs: 20_000,
      },
    );
    const result = JSON.parse(output.trim().split('\n').pop() ?? '{}') as Record<string, { ok: boolean; value?: string; name?: string; code?: string; message?: string }> & { uid: number };
    expect(result.uid).toBe(65534);
    expect(result['missing']).toMatchObject({ ok: false, name: 'InterfaceNotFoundError', code: 'ENODEV' });
    const denied = { ok: false, name: 'PermissionDeniedError', code: 'EPERM' };
    if (unprivilegedFirstPinAllowed()) {
      expect(result['first']).toEqual({ ok: true, value: 'lo' });
      expect(result['repin']).toMatchObject(denied);
      expect(result['repin']?.message).toContain(`SO_BINDTODEVICE(${vethA.host.name})`);
      expect(result['repin']?.message).toContain('CAP_NET_RAW');
      expect(result['unpin']).toMatchObject(denied);
      expect(result['still']).toEqual({ ok: true, value: 'lo' });
    } else {
      expect(result['first']).toMatchObject(denied);
    }
    // The interface lookup comes before the permission check.
    expect(result['missingAfter']).toMatchObject({ ok: false, name: 'InterfaceNotFoundError', code: 'ENODEV' });
  });

  test('PermissionDeniedError is a PlatformError', () => {
    expect(new PermissionDeniedError('x', 'EPERM')).toBeInstanceOf(PlatformError);
  });
});
