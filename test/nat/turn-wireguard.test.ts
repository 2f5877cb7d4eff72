/**
 * A real WireGuard tunnel through a standard TURN server (coturn).
 *
 *   ns A: tswg + TURN client ── veth ── ns S: coturn ── veth ── ns B: wireguard-go
 *         198.18.a.2                    listens 198.18.a.1      198.18.b.2
 *                                       relays from 198.18.b.1
 *
 * A allocates a relayed address (its relay candidate) and permits B's IP;
 * B's only configuration is "endpoint = A's relayed address". A has no
 * endpoint for B: its device learns the proxy for B by roaming when B's first
 * handshake arrives as a Data indication (or ChannelData once a channel is
 * bound). A and B have no route to each other. The TURN client runs as
 * scripts/nat-agent.ts inside ns A. Needs root, turnserver and `npm run build`.
 */
import { existsSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  addressAndUp,
  cleanup,
  createNamespace,
  createTempDir,
  createVethPair,
  execIn,
  leftovers,
  randomBenchmarkSubnet30,
  requireCommands,
  requireRoot,
  uniqueName,
  writeSecretFile,
} from '../../scripts/lib/netns.js';
import { TSWG_BIN, startImplementation, wgKeyPair, type Implementation, type KeyPair } from '../../scripts/lib/topology.js';
import { startCoturn } from '../../scripts/lib/coturn.js';
import { requireAgentBuilt, startAgent } from '../helpers/nat-agent.js';

const USER = { name: 'node-a', password: 's3cret-turn-password' };
const DEVICE_PORT = 51820;

let preconditionError: Error | null = null;

beforeAll(() => {
  try {
    requireRoot('test/nat/turn-wireguard.test.ts');
    requireCommands('wireguard-go', 'wg', 'ip', 'ping', 'turnserver');
    if (!existsSync(new URL('../../dist/src/cli/main.js', import.meta.url))) throw new Error(`dist/ is missing (${TSWG_BIN} runs it): run \`npm run build\` first`);
    requireAgentBuilt();
  } catch (error) {
    preconditionError = error as Error;
  }
});

beforeEach(() => {
  if (preconditionError !== null) throw preconditionError;
});

afterAll(() => {
  cleanup();
  expect(leftovers()).toEqual([]);
});

interface Node {
  namespace: string;
  interfaceName: string;
  keys: KeyPair;
  inner: string;
  wg(...args: string[]): string;
}

async function startNode(implementation: Implementation, namespace: string, inner: string, dir: string): Promise<Node> {
  const interfaceName = uniqueName();
  await startImplementation(implementation, namespace, interfaceName);
  const keys = wgKeyPair();
  const wg = (...args: string[]) => execIn(namespace, 'wg', args);
  wg('set', interfaceName, 'private-key', writeSecretFile(dir, `${interfaceName}.key`, keys.privateKey), 'listen-port', String(DEVICE_PORT));
  execIn(namespace, 'ip', ['addr', 'add', `${inner}/24`, 'dev', interfaceName]);
  execIn(namespace, 'ip', ['link', 'set', 'dev', interfaceName, 'up']);
  return { namespace, interfaceName, keys, inner, wg };
}

async function tunnelThroughTurn(useChannel: boolean): Promise<void> {
  const nsA = createNamespace();
  const nsS = createNamespace();
  const nsB = createNamespace();
  const linkA = createVethPair(nsA, { hostNamespace: nsS });
  const linkB = createVethPair(nsB, { hostNamespace: nsS });
  const netA = randomBenchmarkSubnet30();
  const netB = randomBenchmarkSubnet30();
  addressAndUp(nsS, linkA.host.name, `${netA.first}/30`);
  addressAndUp(nsA, linkA.peer.name, `${netA.second}/30`);
  addressAndUp(nsS, linkB.host.name, `${netB.first}/30`);
  addressAndUp(nsB, linkB.peer.name, `${netB.second}/30`);
  expect(() => execIn(nsA, 'ping', ['-c', '1', '-W', '1', netB.second])).toThrow(); // no direct path
  await startCoturn(nsS, { listenAddresses: [netA.first], relayAddress: netB.first, users: [USER] });

  const dir = createTempDir('tswg-turn-wg-');
  const innerNet = `198.19.${1 + Math.floor(Math.random() * 254)}`;
  const a = await startNode('tswg', nsA, `${innerNet}.1`, dir);
  const b = await startNode('wireguard-go', nsB, `${innerNet}.2`, dir);

  const args = ['--server', `${netA.first}:3478`, '--username', USER.name, '--password', USER.password, '--device-port', String(DEVICE_PORT), '--permit', netB.second];
  if (useChannel) args.push('--channel', `${netB.second}:${DEVICE_PORT}`);
  const agent = startAgent(nsA, 'turn-client', args);
  const relayed = (await agent.waitFor('allocated')).relayed as { address: string; port: number };
  expect(relayed.address).toBe(netB.first);
  await agent.waitFor(useChannel ? 'bound' : 'permitted');

  a.wg('set', a.interfaceName, 'peer', b.keys.publicKey, 'allowed-ips', `${b.inner}/32`); // no endpoint: learned by roaming
  b.wg('set', b.interfaceName, 'peer', a.keys.publicKey, 'allowed-ips', `${a.inner}/32`, 'endpoint', `${relayed.address}:${relayed.port}`);

  execIn(nsB, 'ping', ['-c', '3', '-i', '0.2', '-W', '5', a.inner], { timeoutMs: 20_000 });
  execIn(nsA, 'ping', ['-c', '3', '-i', '0.2', '-W', '5', b.inner], { timeoutMs: 20_000 });
  // A's device talks to the TURN client's proxy for B on A's loopback.
  expect(a.wg('show', a.interfaceName, 'endpoints').trim().split(/\s+/)[1]).toMatch(/^127\.0\.0\.1:\d+$/);
  expect(b.wg('show', b.interfaceName, 'endpoints').trim().split(/\s+/)[1]).toBe(`${relayed.address}:${relayed.port}`);

  // The way the datagrams crossed: ChannelData both ways when a channel is bound, else indications.
  agent.process.child.kill('SIGUSR2');
  const counters = (await agent.waitFor('counters')) as unknown as Record<string, number>;
  const [used, unused] = useChannel ? [['channelDataIn', 'channelDataOut'], ['dataIndicationsIn', 'sendIndicationsOut']] : [['dataIndicationsIn', 'sendIndicationsOut'], ['channelDataIn', 'channelDataOut']];
  for (const name of used) expect(counters[name], JSON.stringify(counters)).toBeGreaterThanOrEqual(6);
  for (const name of unused) expect(counters[name], JSON.stringify(counters)).toBe(0);
}

describe('WireGuard through TURN (coturn)', () => {
  it('B pings A with A\'s relayed address as its endpoint (Send/Data indications)', async () => {
    await tunnelThroughTurn(false);
  });

  it('the same over a bound channel (ChannelData)', async () => {
    await tunnelThroughTurn(true);
  });
});
