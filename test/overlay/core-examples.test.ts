/**
 * Every examples/**\/*.yaml goes through the node's own config parser, so the
 * examples cannot drift from what the node accepts; the static mesh's three
 * files must also agree with each other (each node's peers are the other two,
 * with their slices and one key per node).
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadNodeConfig, type NodeConfig } from '../../src/overlay/config-file.js';

const EXAMPLES = new URL('../../examples/', import.meta.url).pathname;
const yamlFiles = readdirSync(EXAMPLES, { recursive: true, encoding: 'utf8' })
  .filter((name) => name.endsWith('.yaml'))
  .sort();

describe('examples', () => {
  it('has the static and the etcd examples', () => {
    expect(yamlFiles).toEqual(expect.arrayContaining(['etcd-mesh.yaml', 'static/node1.yaml', 'static/node2.yaml', 'static/node3.yaml']));
  });

  it.each(yamlFiles)('%s parses with the node\'s config parser', (name) => {
    const config = loadNodeConfig(join(EXAMPLES, name));
    expect(config.deployment).not.toBe('');
    if (name.startsWith('static/')) {
      expect(config.membership).toBeUndefined();
      expect(config.sliceCidr).toBeDefined();
    }
  });

  it('the static mesh: each node peers with the other two, at their slices, one key per node', () => {
    const nodes = ['node1', 'node2', 'node3'].map((id) => ({ id, config: loadNodeConfig(join(EXAMPLES, 'static', `${id}.yaml`)) }));
    const slices = new Map(nodes.map(({ id, config }) => [id, config.sliceCidr!]));
    expect(new Set(slices.values()).size).toBe(3);
    for (const { config } of nodes) expect(config.deployment).toBe(nodes[0]!.config.deployment);
    for (const { config } of nodes) expect(config.clusterCidr).toBe(nodes[0]!.config.clusterCidr);
    // The key each file gives to the node whose slice a peer routes.
    const keyOfSlice = new Map<string, Set<string>>();
    for (const { id, config } of nodes) {
      expect(config.peers).toHaveLength(2);
      const routed = config.peers.map((peer) => peer.allowedIps).sort();
      expect(routed).toEqual([...slices].filter(([other]) => other !== id).map(([, slice]) => slice).sort());
      for (const peer of config.peers) {
        const keys = keyOfSlice.get(peer.allowedIps) ?? new Set<string>();
        keys.add(peer.publicKey);
        keyOfSlice.set(peer.allowedIps, keys);
      }
    }
    for (const [slice, keys] of keyOfSlice) expect([...keys], slice).toHaveLength(1);
    const allKeys = [...keyOfSlice.values()].map((keys) => [...keys][0]);
    expect(new Set(allKeys).size).toBe(3);
  });

  it('the etcd example is the same file for every node: membership, no peers, no fixed slice', () => {
    const config: NodeConfig = loadNodeConfig(join(EXAMPLES, 'etcd-mesh.yaml'));
    expect(config.membership?.etcd.endpoints).toHaveLength(3);
    expect(config.peers).toEqual([]);
    expect(config.sliceCidr).toBeUndefined();
    expect(config.instanceId).toBeUndefined();
  });
});
