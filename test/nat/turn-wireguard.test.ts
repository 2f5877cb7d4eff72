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
import { describe, expect, it } from 'vitest';
import { createTempDir, execIn } from '../../scripts/lib/netns.js';
import { startCoturn } from '../../scripts/lib/coturn.js';
import { TUNNEL_DEVICE_PORT, requireTunnelTestPreconditions, starOfThree, startAgent, startTunnelNode } from '../helpers/nat-agent.js';

const USER = { name: 'node-a', password: 's3cret-turn-password' };

requireTunnelTestPreconditions('test/nat/turn-wireguard.test.ts', ['turnserver']);

async function tunnelThroughTurn(useChannel: boolean): Promise<void> {
  const { nsA, nsM: nsS, nsB, netA, netB } = starOfThree();
  expect(() => execIn(nsA, 'ping', ['-c', '1', '-W', '1', netB.second])).toThrow(); // no direct path
  await startCoturn(nsS, { listenAddresses: [netA.first], relayAddress: netB.first, users: [USER] });

  const dir = createTempDir('tswg-turn-wg-');
  const innerNet = `198.19.${1 + Math.floor(Math.random() * 254)}`;
  const a = await startTunnelNode('tswg', nsA, `${innerNet}.1`, dir);
  const b = await startTunnelNode('wireguard-go', nsB, `${innerNet}.2`, dir);

  const args = ['--server', `${netA.first}:3478`, '--username', USER.name, '--password', USER.password, '--device-port', String(TUNNEL_DEVICE_PORT), '--permit', netB.second];
  if (useChannel) args.push('--channel', `${netB.second}:${TUNNEL_DEVICE_PORT}`);
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
