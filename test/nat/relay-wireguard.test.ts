/**
 * A real WireGuard tunnel whose only path is the built-in relay.
 *
 *   ns A: tswg  + relay client ── veth ── ns R: relay server ── veth ── ns B: wireguard-go + relay client
 *         198.18.a.2                      198.18.a.1 / 198.18.b.1             198.18.b.2
 *
 * A and B have no route to each other (R does not forward). A's endpoint for
 * B is A's peer proxy on 127.0.0.1; B has no endpoint for A at all and learns
 * B's proxy for A by roaming when the first relayed handshake arrives. Each
 * relay piece runs as scripts/nat-agent.ts inside its namespace. A node with
 * the wrong credential is refused. Needs root and `npm run build`.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { createTempDir, execIn, waitUntil, writeSecretFile } from '../../scripts/lib/netns.js';
import { wgKeyPair } from '../../scripts/lib/topology.js';
import { TUNNEL_DEVICE_PORT, requireTunnelTestPreconditions, starOfThree, startAgent, startTunnelNode } from '../helpers/nat-agent.js';

const CREDENTIAL = 'cluster-hs256-secret-for-tests';

requireTunnelTestPreconditions('test/nat/relay-wireguard.test.ts', []);

describe('WireGuard through the built-in relay', () => {
  it('tswg and wireguard-go ping each other with the relay as their only path', async () => {
    const { nsA, nsM: nsR, nsB, netA, netB } = starOfThree();
    expect(() => execIn(nsA, 'ping', ['-c', '1', '-W', '1', netB.second])).toThrow(); // no direct path

    const dir = createTempDir('tswg-relay-wg-');
    const innerNet = `198.19.${1 + Math.floor(Math.random() * 254)}`;
    const a = await startTunnelNode('tswg', nsA, `${innerNet}.1`, dir);
    const b = await startTunnelNode('wireguard-go', nsB, `${innerNet}.2`, dir);

    const server = startAgent(nsR, 'relay-server', ['--port', '0', '--credential', CREDENTIAL, '--max-sessions', '4']);
    const port = ((await server.waitFor('listening')).endpoint as { port: number }).port;

    const clientA = startAgent(nsA, 'relay-client', ['--server', `${netA.first}:${port}`, '--credential', CREDENTIAL, '--private-key-file', join(dir, `${a.interfaceName}.key`), '--device-port', String(TUNNEL_DEVICE_PORT), '--peer', b.keys.publicKey]);
    const routed = (await clientA.waitFor('routed')).endpoint as { address: string; port: number };
    expect(routed.address).toBe('127.0.0.1');
    const clientB = startAgent(nsB, 'relay-client', ['--server', `${netB.first}:${port}`, '--credential', CREDENTIAL, '--private-key-file', join(dir, `${b.interfaceName}.key`), '--device-port', String(TUNNEL_DEVICE_PORT)]);
    await clientB.waitFor('registered');

    a.wg('set', a.interfaceName, 'peer', b.keys.publicKey, 'allowed-ips', `${b.inner}/32`, 'endpoint', `127.0.0.1:${routed.port}`);
    b.wg('set', b.interfaceName, 'peer', a.keys.publicKey, 'allowed-ips', `${a.inner}/32`); // no endpoint: learned by roaming

    execIn(nsA, 'ping', ['-c', '3', '-i', '0.2', '-W', '5', b.inner], { timeoutMs: 20_000 });
    execIn(nsB, 'ping', ['-c', '3', '-i', '0.2', '-W', '5', a.inner], { timeoutMs: 20_000 });

    // B's device now sends to its relay client's proxy for A, on B's loopback.
    const endpointAtB = b.wg('show', b.interfaceName, 'endpoints').trim().split(/\s+/)[1];
    expect(endpointAtB).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(a.wg('show', a.interfaceName, 'endpoints').trim().split(/\s+/)[1]).toBe(`127.0.0.1:${routed.port}`);
    expect(b.wg('show', b.interfaceName, 'latest-handshakes').trim().split(/\s+/)[1]).not.toBe('0');

    // A third node with the wrong credential gets no challenge (the REFUSED it gets cannot be authenticated) and its agent exits with the reason.
    const intruder = startAgent(nsB, 'relay-client', ['--server', `${netB.first}:${port}`, '--credential', 'a-wrong-credential-of-enough-bytes', '--private-key-file', writeSecretFile(dir, 'intruder.key', wgKeyPair().privateKey), '--device-port', '9']);
    await waitUntil(() => !intruder.process.running(), 'the intruder agent to give up', 10_000);
    expect(intruder.events()).toEqual([{ event: 'error', message: expect.stringMatching(/did not accept the registration after 5 attempts; an unauthenticated REFUSED said: authentication failed/) }]);
    // The tunnel is unaffected.
    execIn(nsA, 'ping', ['-c', '2', '-i', '0.2', '-W', '5', b.inner], { timeoutMs: 20_000 });
  });
});
