/**
 * The sticky source address (src/device/sticky-source.ts), against the real
 * wireguard-go in two network namespaces: the tswg side has a second IPv4
 * and a second IPv6 address on its outer interface, wireguard-go writes to
 * the second one, and the replies must leave from it (wireguard-go takes
 * the source of every authenticated packet as its endpoint, so `wg show`
 * there names the address the replies came from; the kernel's own choice
 * would be the first address). Then the second address is deleted: tswg's
 * sends from it fail, it forgets it, and traffic goes on from the kernel's
 * choice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, ip, randomBenchmarkSubnet30, requireCommands, requireRoot } from '../../scripts/lib/netns.js';
import { createPair, type Pair, type WgNode } from '../../scripts/lib/topology.js';
import { destroyPair, viewOf } from '../helpers/device-interop.js';

/** Ping `count` times; how many replies came (0 when none: ping exits non-zero then). */
function replies(node: WgNode, target: string, count = 5): number {
  let output: string;
  try {
    output = node.exec('ping', ['-c', String(count), '-i', '0.2', '-W', '3', target]);
  } catch (error) {
    output = String((error as { stdout?: unknown }).stdout ?? '');
  }
  const match = / (\d+) received/.exec(output);
  return match === null ? 0 : Number(match[1]);
}

describe('sticky source address: tswg answers from the address wireguard-go wrote to', () => {
  let pair: Pair | undefined;
  let goNode: WgNode;
  let tswgNode: WgNode;
  let second4: string;
  let second6: string;

  beforeAll(async () => {
    requireRoot('the sticky source test');
    requireCommands('wireguard-go', 'wg', 'ping');
    // a: wireguard-go, which knows tswg's endpoint; b: tswg, which learns wireguard-go's.
    pair = await createPair({ left: 'wireguard-go', right: 'tswg', bothEndpoints: false });
    goNode = pair.a;
    tswgNode = pair.b;
    // Second addresses in other subnets, routed to from wireguard-go's side: the kernel's choice stays the first address.
    second4 = randomBenchmarkSubnet30().first;
    ip(tswgNode.namespace, 'address', 'add', `${second4}/32`, 'dev', pair.veth.b);
    ip(goNode.namespace, 'route', 'add', `${second4}/32`, 'dev', pair.veth.a);
    const subnet6 = Number.parseInt(tswgNode.outer6.split(':')[3]!, 16);
    second6 = `2001:2:0:${((subnet6 % 0xfffe) + 1).toString(16)}::5`;
    ip(tswgNode.namespace, 'address', 'add', `${second6}/128`, 'dev', pair.veth.b, 'nodad');
    ip(goNode.namespace, '-6', 'route', 'add', `${second6}/128`, 'dev', pair.veth.a);
  });

  afterAll(async () => {
    if (pair !== undefined) await destroyPair(pair);
    cleanup();
  });

  const pointGoAt = (endpoint: string) => goNode.wg('set', goNode.interfaceName, 'peer', tswgNode.keys.publicKey, 'endpoint', endpoint);
  const goSees = () => viewOf(goNode, tswgNode).endpoint;

  it('IPv4: replies leave from the second address', () => {
    pointGoAt(`${second4}:${tswgNode.port}`);
    expect(replies(goNode, tswgNode.inner4)).toBeGreaterThan(0);
    // The kernel alone would answer from the first address, which wireguard-go would then take as the endpoint.
    expect(goSees()).toBe(`${second4}:${tswgNode.port}`);
    expect(replies(goNode, tswgNode.inner6)).toBeGreaterThan(0);
    expect(goSees()).toBe(`${second4}:${tswgNode.port}`);
  });

  it('IPv6: replies leave from the second address', () => {
    pointGoAt(`[${second6}]:${tswgNode.port}`);
    expect(replies(goNode, tswgNode.inner4)).toBeGreaterThan(0);
    expect(goSees()).toBe(`[${second6}]:${tswgNode.port}`);
  });

  it('IPv6 address deleted: tswg forgets it and its traffic leaves from the kernel choice', () => {
    ip(tswgNode.namespace, 'address', 'del', `${second6}/128`, 'dev', pair!.veth.b);
    expect(replies(tswgNode, goNode.inner6)).toBeGreaterThan(0);
    expect(goSees()).toBe(`[${tswgNode.outer6}]:${tswgNode.port}`);
  });

  it('IPv4 address deleted: the same', () => {
    pointGoAt(`${second4}:${tswgNode.port}`);
    expect(replies(goNode, tswgNode.inner4)).toBeGreaterThan(0);
    expect(goSees()).toBe(`${second4}:${tswgNode.port}`);
    ip(tswgNode.namespace, 'address', 'del', `${second4}/32`, 'dev', pair!.veth.b);
    expect(replies(tswgNode, goNode.inner4)).toBeGreaterThan(0);
    expect(goSees()).toBe(`${tswgNode.outer4}:${tswgNode.port}`);
  });
});
