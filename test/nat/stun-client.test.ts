/**
 * The STUN client (src/nat/stun/client.ts).
 *
 * 1. Against an in-memory port that plays the server: the request on the
 *    wire, the RFC 8489 retransmission schedule, XOR-MAPPED-ADDRESS vs
 *    MAPPED-ADDRESS, error responses, and every kind of bad response
 *    (another transaction, another address, bad FINGERPRINT, truncated,
 *    not STUN) dropped without disturbing the pending request.
 * 2. Against a real coturn in a namespace (veth to this process's
 *    namespace): the mapped address, a retransmission forced by an iptables
 *    rule that drops exactly the first request, and the client running on a
 *    real tswg Device's port (devicePort) while WireGuard traffic keeps
 *    flowing over that same port.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { formatEndpoint, parseCidr, type Endpoint } from '../../src/device/addr.js';
import { Device } from '../../src/device/device.js';
import { silentLogger, type Logger } from '../../src/device/logger.js';
import type { UapiPeerChange } from '../../src/device/uapi.js';
import { devicePort, openSocketPort, type DatagramPort, type DatagramSubscriber, type SocketPort } from '../../src/nat/datagram-port.js';
import { StunAttributeType, StunMessageType } from '../../src/nat/stun/constants.js';
import { StunClient, StunTimeoutError, parseStunServer, resolveStunServer } from '../../src/nat/stun/client.js';
import {
  StunError,
  decodeStunMessage,
  encodeErrorCode,
  encodeMappedAddress,
  encodeStunMessage,
  encodeXorAddress,
  findAttribute,
  type StunAttribute,
} from '../../src/nat/stun/message.js';
import { generatePrivateKey, publicKeyOf } from '../../src/noise/index.js';
import { FakeTun } from '../helpers/nat-loopback.js';
import {
  addressAndUp,
  cleanup,
  createNamespace,
  createVethPair,
  execIn,
  randomBenchmarkSubnet30,
  requireCommands,
  requireRoot,
} from '../../scripts/lib/netns.js';
import { startCoturn, type Coturn } from '../../scripts/lib/coturn.js';
import { buildIcmpEcho, parseIcmpEcho, parseIpv4 } from '../helpers/ip.js';

const SERVER: Endpoint = { family: 4, address: '192.0.2.10', port: 3478 };
const REFLEXIVE: Endpoint = { family: 4, address: '198.51.100.77', port: 61000 };

/** A DatagramPort in memory: records what the client sends; the test delivers answers. */
class MemoryPort implements DatagramPort {
  readonly localPort = 40000;
  readonly sent: Array<{ datagram: Uint8Array; to: Endpoint; at: number }> = [];
  private readonly subscribers: DatagramSubscriber[] = [];
  private waiters: Array<() => void> = [];
  failSends: Error | null = null;

  async send(datagram: Uint8Array, to: Endpoint): Promise<void> {
    if (this.failSends !== null) throw this.failSends;
    this.sent.push({ datagram: new Uint8Array(datagram), to, at: performance.now() });
    for (const wake of this.waiters.splice(0)) wake();
  }
  subscribe(subscriber: DatagramSubscriber): () => void {
    this.subscribers.push(subscriber);
    return () => {
      const at = this.subscribers.indexOf(subscriber);
      if (at >= 0) this.subscribers.splice(at, 1);
    };
  }
  get subscriberCount(): number {
    return this.subscribers.length;
  }
  /** Hand a datagram to the subscribers, as the socket would; true when one consumed it. */
  deliver(datagram: Uint8Array, from: Endpoint = SERVER): boolean {
    for (const subscriber of [...this.subscribers]) if (subscriber(datagram, from)) return true;
    return false;
  }
  async waitForSent(count: number): Promise<void> {
    while (this.sent.length < count) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }
}

/** A response to `request` (the bytes the client sent) with the given attributes. */
function answer(request: Uint8Array, attributes: (id: Uint8Array) => StunAttribute[], type: number = StunMessageType.BindingSuccess, fingerprint = true): Uint8Array {
  const { transactionId } = decodeStunMessage(request);
  return encodeStunMessage({ type, transactionId, attributes: attributes(transactionId) }, { fingerprint });
}

const xorMapped = (endpoint: Endpoint) => (id: Uint8Array): StunAttribute[] => [{ type: StunAttributeType.XorMappedAddress, value: encodeXorAddress(endpoint, id) }];

function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, verbose: (m) => lines.push(m), error: (m) => lines.push(`ERROR ${m}`) };
}

/** Timers and performance.now() that move only when the test advances them: the schedule is checked to the millisecond, whatever the machine's load. */
function useManualTimers(): void {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
}

/** Watch a promise settle without awaiting it, so a test can say "not yet" at a given moment. */
function settledState<T>(promise: Promise<T>): { settled: boolean; value: T | undefined; error: unknown } {
  const state: { settled: boolean; value: T | undefined; error: unknown } = { settled: false, value: undefined, error: undefined };
  promise.then(
    (value) => Object.assign(state, { settled: true, value }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return state;
}

describe('StunClient against an in-memory server', () => {
  let port: MemoryPort;
  let client: StunClient;
  afterEach(() => {
    client.close();
    vi.useRealTimers();
  });

  it('sends a Binding request with FINGERPRINT and resolves with XOR-MAPPED-ADDRESS', async () => {
    port = new MemoryPort();
    client = new StunClient(port);
    const pending = client.binding(SERVER);
    await port.waitForSent(1);
    const request = decodeStunMessage(port.sent[0]!.datagram); // verifies the FINGERPRINT
    expect(request.type).toBe(StunMessageType.BindingRequest);
    expect(findAttribute(request, StunAttributeType.Fingerprint)).toBeDefined();
    expect(port.sent[0]!.to).toEqual(SERVER);
    // A plain MAPPED-ADDRESS with a different value next to XOR-MAPPED-ADDRESS: the XOR one wins.
    const response = answer(port.sent[0]!.datagram, (id) => [
      { type: StunAttributeType.MappedAddress, value: encodeMappedAddress({ family: 4, address: '10.0.0.1', port: 1 }) },
      ...xorMapped(REFLEXIVE)(id),
    ]);
    expect(port.deliver(response)).toBe(true);
    const result = await pending;
    expect(result.mapped).toEqual(REFLEXIVE);
    expect(result.transmissions).toBe(1);
    expect(result.rttMs).toBeGreaterThanOrEqual(0);
  });

  it('falls back to MAPPED-ADDRESS (RFC 3489-era servers)', async () => {
    port = new MemoryPort();
    client = new StunClient(port);
    const pending = client.bindingRequest(SERVER);
    await port.waitForSent(1);
    port.deliver(answer(port.sent[0]!.datagram, () => [{ type: StunAttributeType.MappedAddress, value: encodeMappedAddress(REFLEXIVE) }], StunMessageType.BindingSuccess, false));
    expect(await pending).toEqual(REFLEXIVE);
  });

  it('retransmits on the RFC 8489 schedule (0, RTO, 3 RTO, 7 RTO, ...) with the same transaction, then times out', async () => {
    useManualTimers();
    port = new MemoryPort();
    client = new StunClient(port, { rtoMs: 40, maxRetransmits: 3, lastWaitMultiplier: 3 });
    const started = performance.now();
    const outcome = settledState(client.binding(SERVER));
    // Each request goes out exactly when the schedule says, not a millisecond before.
    expect(port.sent.length).toBe(1);
    for (const [due, count] of [[40, 2], [120, 3], [280, 4]] as const) {
      await vi.advanceTimersByTimeAsync(due - (performance.now() - started) - 1);
      expect(port.sent.length, `before ${due} ms`).toBe(count - 1);
      await vi.advanceTimersByTimeAsync(1);
      expect(port.sent.length, `at ${due} ms`).toBe(count);
    }
    expect(port.sent.map((s) => s.at - started)).toEqual([0, 40, 120, 280]);
    const ids = port.sent.map((s) => Buffer.from(decodeStunMessage(s.datagram).transactionId).toString('hex'));
    expect(new Set(ids).size).toBe(1);
    // After the last request the client waits Rm × RTO = 120 ms, and sends nothing more.
    await vi.advanceTimersByTimeAsync(119);
    expect(outcome.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(outcome.settled).toBe(true);
    expect(outcome.error).toBeInstanceOf(StunTimeoutError);
    expect((outcome.error as Error).message).toMatch(/STUN server 192\.0\.2\.10:3478 did not answer within about 400 ms \(4 requests sent\)/);
    expect(port.sent.length).toBe(4);
  });

  it('the defaults are RTO 500 ms, 7 requests, last wait 16 RTO (39.5 s); timeoutMs caps them', async () => {
    useManualTimers();
    port = new MemoryPort();
    client = new StunClient(port);
    const started = performance.now();
    const capped = settledState(client.binding(SERVER, { timeoutMs: 1700 }));
    await vi.advanceTimersByTimeAsync(1699);
    // Sent at 0, 500, 1500: the default RTO doubling.
    expect(port.sent.map((s) => s.at - started)).toEqual([0, 500, 1500]);
    expect(capped.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(capped.error).toBeInstanceOf(StunTimeoutError);
    expect((capped.error as Error).message).toMatch(/did not answer within 1700 ms \(3 requests sent\)/);

    // Uncapped, the seventh request goes out at 31.5 s and the client gives up 16 RTO (8 s) later.
    const uncapped = settledState(client.binding(SERVER));
    const from = performance.now();
    await vi.advanceTimersByTimeAsync(39_499);
    expect(port.sent.slice(3).map((s) => s.at - from)).toEqual([0, 500, 1500, 3500, 7500, 15_500, 31_500]);
    expect(uncapped.settled).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(uncapped.error).toBeInstanceOf(StunTimeoutError);
    expect((uncapped.error as Error).message).toMatch(/\(7 requests sent\)/);
  });

  it('drops bad responses without consuming the transaction, then accepts the real one', async () => {
    port = new MemoryPort();
    const log = recordingLog();
    client = new StunClient(port, { log, rtoMs: 10_000 });
    const pending = client.binding(SERVER);
    await port.waitForSent(1);
    const request = port.sent[0]!.datagram;
    const good = answer(request, xorMapped(REFLEXIVE));

    // Another transaction: not ours, left for other subscribers.
    const otherTransaction = new Uint8Array(good);
    otherTransaction[19]! ^= 1;
    expect(port.deliver(otherTransaction)).toBe(false);
    // Not STUN at all (a WireGuard-shaped datagram): not ours.
    expect(port.deliver(new Uint8Array([4, 0, 0, 0, ...new Uint8Array(28)]))).toBe(false);
    // From another address or port: ignored.
    expect(port.deliver(good, { ...SERVER, port: 3479 })).toBe(true);
    expect(port.deliver(good, { family: 4, address: '192.0.2.11', port: 3478 })).toBe(true);
    // Bad FINGERPRINT.
    const badFingerprint = new Uint8Array(good);
    badFingerprint[badFingerprint.length - 1]! ^= 0xff;
    expect(port.deliver(badFingerprint)).toBe(true);
    // Length lie: a truncated datagram never even looks like STUN.
    expect(port.deliver(good.subarray(0, good.length - 4))).toBe(false);
    // An attribute that overruns the message (header intact): consumed and dropped.
    const overrun = answer(request, (id) => [{ type: StunAttributeType.XorMappedAddress, value: encodeXorAddress(REFLEXIVE, id) }], StunMessageType.BindingSuccess, false);
    overrun[23] = 200;
    expect(port.deliver(overrun)).toBe(true);
    // A garbled XOR-MAPPED-ADDRESS, no address at all, a request instead of a response, an error without ERROR-CODE.
    expect(port.deliver(answer(request, () => [{ type: StunAttributeType.XorMappedAddress, value: new Uint8Array([0, 9, 0, 0]) }]))).toBe(true);
    expect(port.deliver(answer(request, () => []))).toBe(true);
    expect(port.deliver(answer(request, xorMapped(REFLEXIVE), StunMessageType.BindingRequest))).toBe(true);
    expect(port.deliver(answer(request, () => [], StunMessageType.BindingError))).toBe(true);

    expect(port.deliver(good)).toBe(true);
    expect((await pending).mapped).toEqual(REFLEXIVE);
    const drops = log.lines.filter((line) => line.includes('dropped a response'));
    expect(drops.length).toBe(8);
    expect(drops.join('\n')).toMatch(/not from the server/);
    expect(drops.join('\n')).toMatch(/FINGERPRINT mismatch/);
    expect(drops.join('\n')).toMatch(/claims 200 bytes/);
    expect(drops.join('\n')).toMatch(/unknown address family 0x09/);
    expect(drops.join('\n')).toMatch(/neither XOR-MAPPED-ADDRESS nor MAPPED-ADDRESS/);
    // The answered transaction is gone: a duplicate response is no longer consumed.
    expect(port.deliver(good)).toBe(false);
  });

  it('a timeout names the reason the last response was dropped', async () => {
    port = new MemoryPort();
    client = new StunClient(port, { rtoMs: 30, maxRetransmits: 0, lastWaitMultiplier: 2 });
    const pending = client.binding(SERVER).catch((e: unknown) => e);
    await port.waitForSent(1);
    port.deliver(answer(port.sent[0]!.datagram, xorMapped(REFLEXIVE)), { family: 4, address: '203.0.113.66', port: 3478 });
    const error = await pending;
    expect(error).toBeInstanceOf(StunTimeoutError);
    expect((error as Error).message).toMatch(/the last response was dropped: it came from 203\.0\.113\.66:3478, not from the server/);
  });

  it('an error response rejects with StunError naming the server, code and reason', async () => {
    port = new MemoryPort();
    client = new StunClient(port);
    const pending = client.binding(SERVER).catch((e: unknown) => e);
    await port.waitForSent(1);
    port.deliver(answer(port.sent[0]!.datagram, () => [{ type: StunAttributeType.ErrorCode, value: encodeErrorCode(401, 'Unauthorized') }], StunMessageType.BindingError));
    const error = await pending;
    expect(error).toBeInstanceOf(StunError);
    expect((error as Error).message).toBe('STUN server 192.0.2.10:3478 answered error 401 (Unauthorized)');
  });

  it('a success response with an unknown comprehension-required attribute fails the transaction (RFC 8489 §6.3.3)', async () => {
    port = new MemoryPort();
    client = new StunClient(port);
    const pending = client.binding(SERVER).catch((e: unknown) => e);
    await port.waitForSent(1);
    port.deliver(answer(port.sent[0]!.datagram, (id) => [...xorMapped(REFLEXIVE)(id), { type: 0x7777, value: new Uint8Array(4) }]));
    const error = await pending;
    expect(error).toBeInstanceOf(StunError);
    expect((error as Error).message).toMatch(/unknown comprehension-required attribute\(s\) 0x7777/);
  });

  it('answers each of several concurrent requests by transaction', async () => {
    port = new MemoryPort();
    client = new StunClient(port);
    const servers: Endpoint[] = [SERVER, { family: 4, address: '192.0.2.20', port: 3478 }, { family: 6, address: '2001:db8::20', port: 19302 }];
    const pendings = servers.map((server) => client.bindingRequest(server));
    await port.waitForSent(3);
    // Answer in reverse order, each with a different mapping.
    for (let i = 2; i >= 0; i--) {
      const sent = port.sent.find((s) => s.to === servers[i])!;
      port.deliver(answer(sent.datagram, xorMapped({ ...REFLEXIVE, port: 50000 + i })), servers[i]);
    }
    expect((await Promise.all(pendings)).map((m) => m.port)).toEqual([50000, 50001, 50002]);
  });

  it('a send failure rejects naming the server; close() rejects pending requests and unsubscribes', async () => {
    port = new MemoryPort();
    client = new StunClient(port);
    port.failSends = new Error('ENETUNREACH');
    await expect(client.binding(SERVER)).rejects.toThrow(/sending a STUN Binding request to 192\.0\.2\.10:3478 failed: ENETUNREACH/);
    port.failSends = null;
    const pending = client.binding(SERVER).catch((e: unknown) => e);
    expect(port.subscriberCount).toBe(1);
    client.close();
    const error = await pending;
    expect(error).toBeInstanceOf(StunError);
    expect((error as Error).message).toMatch(/closed while waiting for 192\.0\.2\.10:3478/);
    expect(port.subscriberCount).toBe(0);
    await expect(client.binding(SERVER)).rejects.toThrow(/closed/);
  });
});

describe('parseStunServer / resolveStunServer', () => {
  it('parses host:port, [v6]:port, bare hosts and stun: URIs', () => {
    expect(parseStunServer('stun.example.org')).toEqual({ host: 'stun.example.org', port: 3478 });
    expect(parseStunServer('stun.l.google.com:19302')).toEqual({ host: 'stun.l.google.com', port: 19302 });
    expect(parseStunServer('203.0.113.1:3479')).toEqual({ host: '203.0.113.1', port: 3479 });
    expect(parseStunServer('[2001:db8::1]:3479')).toEqual({ host: '2001:db8::1', port: 3479 });
    expect(parseStunServer('[2001:db8::1]')).toEqual({ host: '2001:db8::1', port: 3478 });
    expect(parseStunServer('2001:db8::1')).toEqual({ host: '2001:db8::1', port: 3478 });
    expect(parseStunServer('stun:example.org:5349')).toEqual({ host: 'example.org', port: 5349 });
  });

  it.each([
    ['', /'' is not a STUN server address: it is empty/],
    ['host:0', /'host:0' .* port '0' is not 1\.\.65535/],
    ['host:70000', /port '70000' is not 1\.\.65535/],
    ['host:', /port '' is not/],
    [':3478', /the host is empty/],
    ['[2001:db8::1', /missing '\]'/],
    ['[nope]:1', /'nope' inside brackets is not an IPv6 address/],
    ['2001:db8::1:99999', /write an IPv6 address with a port as \[address\]:port/],
    ['bad host:1', /'bad host' is not a host name or IP address/],
  ])('refuses %j naming it', (text, pattern) => {
    expect(() => parseStunServer(text)).toThrow(StunError);
    expect(() => parseStunServer(text)).toThrow(pattern);
  });

  it('resolves literals without DNS and names through node:dns', async () => {
    expect(await resolveStunServer('[2001:DB8:0::1]:3479')).toEqual({ family: 6, address: '2001:db8::1', port: 3479 });
    expect(await resolveStunServer('203.0.113.1')).toEqual({ family: 4, address: '203.0.113.1', port: 3478 });
    await expect(resolveStunServer('203.0.113.1', 6)).rejects.toThrow(/'203\.0\.113\.1' is an IPv4 address, but IPv6 is needed/);
    expect(await resolveStunServer('localhost:1234', 4)).toEqual({ family: 4, address: '127.0.0.1', port: 1234 });
  });
});

// ---- real coturn ------------------------------------------------------------

describe('StunClient against coturn in a namespace', () => {
  let serverNamespace: string;
  let local: string;
  let server: Endpoint;
  let coturn: Coturn;
  const sockets: SocketPort[] = [];
  const devices: Device[] = [];

  beforeAll(async () => {
    requireRoot('the STUN client coturn tests');
    requireCommands('turnserver', 'iptables');
    serverNamespace = createNamespace();
    const subnet = randomBenchmarkSubnet30();
    const veth = createVethPair(serverNamespace);
    addressAndUp(null, veth.host.name, `${subnet.first}/30`);
    addressAndUp(serverNamespace, veth.peer.name, `${subnet.second}/30`);
    local = subnet.first;
    coturn = await startCoturn(serverNamespace, { listenAddresses: [subnet.second] });
    server = { family: 4, address: subnet.second, port: coturn.port };
  });

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await Promise.all(devices.splice(0).map((device) => device.close()));
  });
  afterAll(() => cleanup());

  it('gets the mapped address of a plain socket (no NAT: its own address and port)', async () => {
    const socket = await openSocketPort(4);
    sockets.push(socket);
    // An RTO far above any answer time on a loaded machine: one request is the claim.
    const client = new StunClient(socket, { rtoMs: 2000 });
    try {
      const result = await client.binding(server, { timeoutMs: 10_000 });
      expect(result.mapped, coturn.log()).toEqual({ family: 4, address: local, port: socket.localPort });
      expect(result.transmissions).toBe(1);
    } finally {
      client.close();
    }
  });

  it('retransmits when the first request is lost (iptables drops exactly one)', async () => {
    const rule = ['-p', 'udp', '--dport', String(coturn.port), '-m', 'statistic', '--mode', 'nth', '--every', '1000000', '--packet', '0', '-j', 'DROP'];
    execIn(serverNamespace, 'iptables', ['-I', 'INPUT', ...rule]);
    const socket = await openSocketPort(4);
    sockets.push(socket);
    const log = recordingLog();
    // The retransmission must be answered before the next one is due, even on a loaded machine.
    const client = new StunClient(socket, { rtoMs: 1000, log });
    try {
      const result = await client.binding(server, { timeoutMs: 10_000 });
      expect(result.mapped).toEqual({ family: 4, address: local, port: socket.localPort });
      expect(result.transmissions).toBe(2);
      expect(result.elapsedMs).toBeGreaterThanOrEqual(998);
      expect(log.lines.some((line) => line.includes('retransmitting Binding request'))).toBe(true);
      const counters = execIn(serverNamespace, 'iptables', ['-L', 'INPUT', '-v', '-n', '-x']);
      expect(counters).toMatch(/^\s*1\s+\d+\s+DROP/m);
    } finally {
      client.close();
      execIn(serverNamespace, 'iptables', ['-D', 'INPUT', ...rule]);
    }
  });

  it('works over a tswg Device port while WireGuard traffic flows on the same port', async () => {
    const makeNode = async (address: string) => {
      const tun = new FakeTun();
      const device = new Device({ tun, log: silentLogger });
      await device.start();
      devices.push(device);
      const privateKey = generatePrivateKey();
      await device.set({ privateKey, replacePeers: false, peers: [] });
      return { device, tun, publicKey: publicKeyOf(privateKey), address };
    };
    const a = await makeNode('10.9.0.1');
    const b = await makeNode('10.9.0.2');
    const peer = (node: typeof a): UapiPeerChange => ({
      publicKey: node.publicKey,
      remove: false,
      updateOnly: false,
      replaceAllowedIps: true,
      allowedIps: [parseCidr(`${node.address}/32`)],
      endpoint: { family: 4, address: '127.0.0.1', port: node.device.listenPort },
    });
    await a.device.set({ replacePeers: false, peers: [peer(b)] });
    await b.device.set({ replacePeers: false, peers: [peer(a)] });
    const echo = (sequence: number) =>
      buildIcmpEcho({ source: a.address, destination: b.address, type: 8, identifier: 7, sequence, payload: new Uint8Array(32).fill(sequence) });

    a.tun.inject(echo(1));
    await b.tun.waitForPackets(1);
    const client = new StunClient(devicePort(a.device));
    try {
      // STUN and WireGuard interleaved on A's one port.
      const mappedPromise = client.binding(server, { timeoutMs: 5000 });
      a.tun.inject(echo(2));
      const result = await mappedPromise;
      expect(formatEndpoint(result.mapped), coturn.log()).toBe(formatEndpoint({ family: 4, address: local, port: a.device.listenPort }));
      a.tun.inject(echo(3));
      const packets = await b.tun.waitForPackets(3);
      expect(packets.map((p) => parseIcmpEcho(parseIpv4(p)).sequence)).toEqual([1, 2, 3]);
      expect(a.device.get().peers[0]!.rxBytes).toBeGreaterThan(0);
    } finally {
      client.close();
    }
  });
});
