/**
 * Interop: the sans-I/O protocol core (src/noise) against the reference
 * userspace implementation, wireguard-go.
 *
 * Topology (fresh names and addresses every run):
 *
 *   test process (root namespace)                namespace A
 *   node:dgram socket on 198.18.x.2  ---veth---  198.18.x.1, wireguard-go -f <wg>
 *   Tunnel (src/noise), inner 198.19.m.2         <wg>: 198.19.m.1/24, listen-port 51820
 *
 * The test drives its Tunnel by hand: every datagram it sends comes out of
 * Tunnel.encapsulate/decapsulate, every datagram it receives goes into
 * Tunnel.decapsulate. Inner traffic is ICMP echo, answered by A's kernel or
 * by ping(8) running in A.
 *
 * Needs root; fails (does not skip) without it.
 */
import dgram from 'node:dgram';
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  StaticIdentity,
  Tunnel,
  decodeKey,
  encodeKey,
  generatePresharedKey,
  generatePrivateKey,
  messageType,
  publicKeyOf,
  type TunnelOutput,
} from '../../src/noise/index.js';
import {
  ICMP_ECHO_REPLY,
  ICMP_ECHO_REQUEST,
  IPPROTO_ICMP,
  buildIcmpEcho,
  parseIcmpEcho,
  parseIpv4,
  parseIpv4Address,
  type Ipv4Packet,
  type ParsedIcmpEcho,
} from '../helpers/ip.js';
import {
  addressAndUp,
  cleanup,
  createNamespace,
  createTempDir,
  createVethPair,
  execIn,
  leftovers,
  randomBenchmarkSubnet30,
  registerCleanup,
  registerPathForRemoval,
  requireCommands,
  requireRoot,
  run,
  startIn,
  uniqueName,
  waitUntil,
  writeSecretFile,
  type NamespaceProcess,
  type Subnet30,
} from '../../scripts/lib/netns.js';

const WG_LISTEN_PORT = 51820;
/** How long to wait for any one datagram. */
const RECEIVE_TIMEOUT_MS = 5000;

// ---- UDP endpoint of the test ----------------------------------------------

interface Datagram {
  data: Uint8Array;
  address: string;
  port: number;
}

/** A bound UDP socket with an awaitable receive queue. */
class UdpEndpoint {
  private readonly queue: Datagram[] = [];
  private waiter: (() => void) | null = null;
  private closed = false;
  private readonly unregister: () => void;

  private constructor(
    private readonly socket: dgram.Socket,
    readonly address: string,
    readonly port: number,
    private readonly diagnostics: () => string,
  ) {
    socket.on('message', (message, rinfo) => {
      this.queue.push({ data: new Uint8Array(message), address: rinfo.address, port: rinfo.port });
      this.waiter?.();
    });
    this.unregister = registerCleanup('other', `close UDP socket ${address}:${port}`, () => this.close());
  }

  static async bind(address: string, diagnostics: () => string): Promise<UdpEndpoint> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, address, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new UdpEndpoint(socket, address, socket.address().port, diagnostics);
  }

  /** The sender address as bytes (IPv4 and port), what MAC2 cookies are bound to. */
  static sourceBytes(datagram: Datagram): Uint8Array {
    const bytes = new Uint8Array(6);
    bytes.set(parseIpv4Address(datagram.address));
    new DataView(bytes.buffer).setUint16(4, datagram.port);
    return bytes;
  }

  async send(datagrams: readonly Uint8Array[], address: string, port: number): Promise<void> {
    for (const datagram of datagrams) {
      await new Promise<void>((resolve, reject) => this.socket.send(datagram, port, address, (error) => (error ? reject(error) : resolve())));
    }
  }

  async receive(what: string, timeoutMs = RECEIVE_TIMEOUT_MS): Promise<Datagram> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) {
        throw new Error(`no datagram within ${timeoutMs} ms on ${this.address}:${this.port} while waiting for ${what}\n${this.diagnostics()}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = null;
    }
    return this.queue.shift()!;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    this.unregister();
  }
}

// ---- the wireguard-go side ---------------------------------------------------

interface WireguardGo {
  namespace: string;
  subnet: Subnet30;
  interfaceName: string;
  process: NamespaceProcess;
  publicKey: Uint8Array;
  /** Tunnel address of wireguard-go's interface, and ours. */
  innerAddress: string;
  ourInnerAddress: string;
  secretsDir: string;
  /** The public key of the peer currently configured (ours), base64. */
  configuredPeer: string | null;
}

let wgo: WireguardGo | undefined;
let pskFiles = 0;

function wireguardGo(): WireguardGo {
  if (wgo === undefined) throw new Error('wireguard-go was not set up (see the beforeAll failure)');
  return wgo;
}

function logTail(lines = 40): string {
  if (wgo === undefined) return '';
  const output = wgo.process.output().trimEnd().split('\n').slice(-lines).join('\n');
  const state = wgo.process.running() ? 'running' : 'EXITED';
  return `wireguard-go (${state}) log tail:\n${output}`;
}

function wg(...args: string[]): string {
  return execIn(wireguardGo().namespace, 'wg', args).trim();
}

/** Replace the configured peer with ours; set its endpoint when wireguard-go must initiate. */
function configurePeer(publicKey: Uint8Array, presharedKey: Uint8Array, endpoint?: string): void {
  const w = wireguardGo();
  if (w.configuredPeer !== null) wg('set', w.interfaceName, 'peer', w.configuredPeer, 'remove');
  const pskFile = writeSecretFile(w.secretsDir, `psk-${++pskFiles}`, `${encodeKey(presharedKey)}\n`);
  const peer = encodeKey(publicKey);
  const args = ['set', w.interfaceName, 'peer', peer, 'preshared-key', pskFile, 'allowed-ips', `${w.ourInnerAddress}/32`];
  if (endpoint !== undefined) args.push('endpoint', endpoint);
  wg(...args);
  w.configuredPeer = peer;
}

/** `wg show <if> <field>` for our peer, split on tabs (without the key column). */
function wgShowPeer(field: 'latest-handshakes' | 'transfer' | 'endpoints' | 'preshared-keys'): string[] {
  const w = wireguardGo();
  const output = wg('show', w.interfaceName, field);
  const line = output.split('\n').find((l) => l.startsWith(`${w.configuredPeer}\t`));
  if (line === undefined) throw new Error(`wg show ${w.interfaceName} ${field} has no line for our peer:\n${output}`);
  return line.split('\t').slice(1);
}

/**
 * After an exchange: wireguard-go reports a recent handshake, our endpoint and
 * PSK, and traffic both ways; its byte counters match the Tunnel's exactly
 * (each side counts whole datagrams). Polled briefly, since wireguard-go bumps
 * a counter only after the send/receive that we may already have seen.
 */
async function expectWireguardGoSawExchange(tunnel: Tunnel, psk: Uint8Array, ourEndpoint: string): Promise<void> {
  const [handshake] = wgShowPeer('latest-handshakes');
  const handshakeSeconds = Number(handshake);
  expect(handshakeSeconds, 'wg show latest-handshakes: no handshake recorded').toBeGreaterThan(0);
  expect(Math.abs(Date.now() / 1000 - handshakeSeconds), 'wg show latest-handshakes: not recent').toBeLessThan(60);

  let transfer: number[] = [];
  const counted = (): boolean => {
    transfer = wgShowPeer('transfer').map(Number);
    return transfer[0] === tunnel.txBytes && transfer[1] === tunnel.rxBytes;
  };
  await waitUntil(counted, 'wireguard-go transfer counters to match ours', 2000, 50).catch(() => undefined);
  const [rx, tx] = transfer;
  expect(rx, 'wg show transfer: received bytes').toBeGreaterThan(0);
  expect(tx, 'wg show transfer: sent bytes').toBeGreaterThan(0);
  expect({ wireguardGoReceived: rx, wireguardGoSent: tx }, 'wg show transfer vs Tunnel.txBytes/rxBytes').toEqual({
    wireguardGoReceived: tunnel.txBytes,
    wireguardGoSent: tunnel.rxBytes,
  });

  expect(wgShowPeer('endpoints')).toEqual([ourEndpoint]);
  expect(wgShowPeer('preshared-keys')).toEqual([encodeKey(psk)]);
}

// ---- driving the Tunnel ------------------------------------------------------

function expectClean(output: TunnelOutput, what: string): void {
  expect(output.error, `${what}: ${output.error?.code}: ${output.error?.message}`).toBeNull();
  expect(output.cookieReply, `${what}: unexpected cookie reply`).toBeNull();
}

/**
 * Receive and decapsulate transport datagrams from wireguard-go until one
 * carries an IP packet (keepalives are skipped); whatever the tunnel wants to
 * send in return goes out. Returns the decrypted plaintext, still padded.
 */
async function receiveIpPacket(udp: UdpEndpoint, tunnel: Tunnel, what: string): Promise<Uint8Array> {
  const w = wireguardGo();
  const deadline = Date.now() + RECEIVE_TIMEOUT_MS;
  for (;;) {
    const datagram = await udp.receive(what, Math.max(1, deadline - Date.now()));
    expect(`${datagram.address}:${datagram.port}`, 'datagram from an unexpected source').toBe(`${w.subnet.first}:${WG_LISTEN_PORT}`);
    expect(messageType(datagram.data), `expected transport data while waiting for ${what}`).toBe('transport');
    const output = tunnel.decapsulate(datagram.data, { source: UdpEndpoint.sourceBytes(datagram) });
    expectClean(output, `decapsulating ${what}`);
    expect(output.authenticated).toBe(true);
    await udp.send(output.network, w.subnet.first, WG_LISTEN_PORT);
    if (output.tunnel !== null) return output.tunnel;
  }
}

/** Trim WireGuard's padding off a decrypted IPv4 packet and check the padding itself. */
function unpad(plaintext: Uint8Array): { ip: Ipv4Packet; icmp: ParsedIcmpEcho } {
  const ip = parseIpv4(plaintext);
  expect(plaintext.length % 16, `plaintext of ${plaintext.length} bytes is not padded to 16`).toBe(0);
  expect(plaintext.length - ip.totalLength, 'more padding than needed').toBeLessThan(16);
  expect(Array.from(plaintext.subarray(ip.totalLength)).every((b) => b === 0), 'padding is not zero').toBe(true);
  expect(ip.headerChecksumValid, 'IPv4 header checksum').toBe(true);
  expect(ip.protocol).toBe(IPPROTO_ICMP);
  const icmp = parseIcmpEcho(ip);
  expect(icmp.checksumValid, 'ICMP checksum').toBe(true);
  return { ip, icmp };
}

function newPeerKeys(): { identity: StaticIdentity; presharedKey: Uint8Array } {
  return { identity: new StaticIdentity(generatePrivateKey()), presharedKey: generatePresharedKey() };
}

function randomPayload(length: number): Uint8Array {
  const payload = new Uint8Array(length);
  for (let i = 0; i < length; i++) payload[i] = Math.floor(Math.random() * 256);
  return payload;
}

// ---- the suite -------------------------------------------------------------------

describe('protocol core interop with wireguard-go', () => {
  beforeAll(async () => {
    requireRoot('the wireguard-go interop suite');
    requireCommands('ip', 'wg', 'wireguard-go', 'ping');
    if (!existsSync('/dev/net/tun')) throw new Error('/dev/net/tun is missing: wireguard-go cannot create its interface');

    const namespace = createNamespace();
    const veth = createVethPair(namespace);
    const subnet = randomBenchmarkSubnet30();
    addressAndUp(namespace, veth.peer.name, `${subnet.first}/30`);
    addressAndUp(null, veth.host.name, `${subnet.second}/30`);

    const interfaceName = uniqueName();
    const socketPath = `/var/run/wireguard/${interfaceName}.sock`;
    registerPathForRemoval(socketPath);
    const process_ = startIn(namespace, 'wireguard-go', ['-f', interfaceName], {
      name: 'wireguard-go',
      env: { ...process.env, LOG_LEVEL: 'verbose' },
    });
    const m = Math.floor(Math.random() * 256);
    wgo = {
      namespace,
      subnet,
      interfaceName,
      process: process_,
      publicKey: new Uint8Array(32),
      innerAddress: `198.19.${m}.1`,
      ourInnerAddress: `198.19.${m}.2`,
      secretsDir: createTempDir(),
      configuredPeer: null,
    };
    await waitUntil(() => existsSync(socketPath) || !process_.running(), `the UAPI socket ${socketPath}`, 10_000).catch((error: Error) => {
      throw new Error(`${error.message}\n${logTail()}`);
    });
    if (!process_.running()) throw new Error(`wireguard-go exited during start-up\n${logTail()}`);

    // wireguard-go's key pair comes from wg(8), not from us: the key encodings must agree.
    const privateKey = execIn(namespace, 'wg', ['genkey']).trim();
    const publicKey = run('wg', ['pubkey'], { input: `${privateKey}\n` }).trim();
    wgo.publicKey = decodeKey(publicKey, 'wg pubkey output');
    expect(encodeKey(publicKeyOf(decodeKey(privateKey))), 'our X25519 public key of the wg genkey key').toBe(publicKey);
    const keyFile = writeSecretFile(wgo.secretsDir, 'wg.key', `${privateKey}\n`);
    wg('set', interfaceName, 'private-key', keyFile, 'listen-port', String(WG_LISTEN_PORT));
    execIn(namespace, 'ip', ['addr', 'add', `${wgo.innerAddress}/24`, 'dev', interfaceName]);
    execIn(namespace, 'ip', ['link', 'set', 'dev', interfaceName, 'up']);
    expect(wg('show', interfaceName, 'listen-port')).toBe(String(WG_LISTEN_PORT));
  });

  afterAll(async () => {
    const pid = wgo?.process.pid;
    try {
      if (wgo !== undefined) await wgo.process.stop();
    } finally {
      cleanup();
    }
    expect(leftovers(), 'namespaces/links left behind').toEqual([]);
    if (pid !== undefined) expect(existsSync(`/proc/${pid}`), `wireguard-go (pid ${pid}) still exists`).toBe(false);
  });

  test('initiates a handshake (with PSK) and exchanges an ICMP echo both ways', async () => {
    const w = wireguardGo();
    const { identity, presharedKey } = newPeerKeys();
    // No endpoint: wireguard-go has to learn ours from the initiation.
    configurePeer(identity.publicKey, presharedKey);
    const udp = await UdpEndpoint.bind(w.subnet.second, logTail);
    try {
      const tunnel = new Tunnel({ identity, peerPublicKey: w.publicKey, presharedKey });
      const echo = { identifier: Math.floor(Math.random() * 65536), sequence: 1 + Math.floor(Math.random() * 1000), payload: randomPayload(56) };
      const request = buildIcmpEcho({ ...echo, type: ICMP_ECHO_REQUEST, source: w.ourInnerAddress, destination: w.innerAddress });

      // No session yet: the packet is staged and an initiation goes out.
      const first = tunnel.encapsulate(request);
      expectClean(first, 'encapsulate without a session');
      expect(first.network.map((d) => messageType(d))).toEqual(['initiation']);
      expect(tunnel.stagedCount).toBe(1);
      await udp.send(first.network, w.subnet.first, WG_LISTEN_PORT);

      const response = await udp.receive('the handshake response');
      expect(`${response.address}:${response.port}`).toBe(`${w.subnet.first}:${WG_LISTEN_PORT}`);
      expect(messageType(response.data), 'wireguard-go answered the initiation with something else').toBe('response');
      const completed = tunnel.decapsulate(response.data, { source: UdpEndpoint.sourceBytes(response) });
      expectClean(completed, 'decapsulating the handshake response');
      expect(completed.authenticated).toBe(true);
      expect(completed.tunnel).toBeNull();
      // The staged echo request goes out under the new session.
      expect(completed.network.map((d) => messageType(d))).toEqual(['transport']);
      expect(tunnel.stagedCount).toBe(0);
      expect(tunnel.keypairs.current?.isInitiator).toBe(true);
      expect(tunnel.lastHandshakeWallTime).toBeGreaterThan(0);
      await udp.send(completed.network, w.subnet.first, WG_LISTEN_PORT);

      // wireguard-go decrypts it, A's kernel answers, wireguard-go encrypts the reply to the endpoint it learned.
      const plaintext = await receiveIpPacket(udp, tunnel, 'the ICMP echo reply');
      const { ip, icmp } = unpad(plaintext);
      expect(ip.source, 'echo reply source').toBe(w.innerAddress);
      expect(ip.destination, 'echo reply destination').toBe(w.ourInnerAddress);
      expect(icmp.type, 'ICMP type (0 = echo reply)').toBe(ICMP_ECHO_REPLY);
      expect(icmp.code).toBe(0);
      expect(icmp.identifier).toBe(echo.identifier);
      expect(icmp.sequence).toBe(echo.sequence);
      expect(Buffer.from(icmp.payload).equals(Buffer.from(echo.payload)), 'echo reply payload differs').toBe(true);

      await expectWireguardGoSawExchange(tunnel, presharedKey, `${udp.address}:${udp.port}`);
    } finally {
      udp.close();
    }
  });

  test('answers a handshake that wireguard-go initiates and decrypts the data that follows', async () => {
    const w = wireguardGo();
    const { identity, presharedKey } = newPeerKeys();
    const udp = await UdpEndpoint.bind(w.subnet.second, logTail);
    try {
      // wireguard-go must know where we are to initiate.
      configurePeer(identity.publicKey, presharedKey, `${udp.address}:${udp.port}`);
      const tunnel = new Tunnel({ identity, peerPublicKey: w.publicKey, presharedKey });

      const ping = startIn(w.namespace, 'ping', ['-n', '-c', '1', '-W', '5', w.ourInnerAddress], { name: 'ping' });
      const initiation = await udp.receive('the handshake initiation that ping in the namespace triggers');
      expect(`${initiation.address}:${initiation.port}`).toBe(`${w.subnet.first}:${WG_LISTEN_PORT}`);
      expect(messageType(initiation.data), 'first datagram from wireguard-go').toBe('initiation');

      const answered = tunnel.decapsulate(initiation.data, { source: UdpEndpoint.sourceBytes(initiation) });
      expectClean(answered, 'decapsulating the handshake initiation');
      expect(answered.authenticated).toBe(true);
      expect(answered.tunnel).toBeNull();
      expect(answered.network.map((d) => messageType(d))).toEqual(['response']);
      // Responder: the session waits for key confirmation.
      expect(tunnel.keypairs.current).toBeNull();
      expect(tunnel.keypairs.next?.isInitiator).toBe(false);
      await udp.send(answered.network, w.subnet.first, WG_LISTEN_PORT);

      // wireguard-go now sends the echo request it held back; it confirms our session.
      const plaintext = await receiveIpPacket(udp, tunnel, "the ICMP echo request from ping in wireguard-go's namespace");
      expect(tunnel.keypairs.current?.isInitiator, 'first data did not confirm the responder session').toBe(false);
      expect(tunnel.keypairs.next).toBeNull();
      const { ip, icmp } = unpad(plaintext);
      expect(ip.source, 'echo request source').toBe(w.innerAddress);
      expect(ip.destination, 'echo request destination').toBe(w.ourInnerAddress);
      expect(icmp.type, 'ICMP type (8 = echo request)').toBe(ICMP_ECHO_REQUEST);
      expect(icmp.code).toBe(0);

      // Answer it through the tunnel: ping in the namespace must see its reply.
      const reply = buildIcmpEcho({
        type: ICMP_ECHO_REPLY,
        source: w.ourInnerAddress,
        destination: w.innerAddress,
        identifier: icmp.identifier,
        sequence: icmp.sequence,
        payload: icmp.payload,
      });
      const sent = tunnel.encapsulate(reply);
      expectClean(sent, 'encapsulating the echo reply');
      expect(sent.network.map((d) => messageType(d))).toEqual(['transport']);
      await udp.send(sent.network, w.subnet.first, WG_LISTEN_PORT);

      const status = await ping.waitForExit(8000);
      expect(status.code, `ping in the namespace failed:\n${ping.output()}\n${logTail()}`).toBe(0);
      expect(ping.output()).toMatch(/1 packets transmitted, 1 received/);

      await expectWireguardGoSawExchange(tunnel, presharedKey, `${udp.address}:${udp.port}`);
    } finally {
      udp.close();
    }
  });
});
