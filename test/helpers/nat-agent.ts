/**
 * Runs scripts/nat-agent.ts (from dist/) inside a network namespace and reads
 * the JSON events it prints: the relay and TURN WireGuard tests use it to put
 * a relay server, a relay client or a TURN client next to a device.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, expect } from 'vitest';
import {
  addressAndUp,
  cleanup,
  createNamespace,
  createVethPair,
  execIn,
  leftovers,
  randomBenchmarkSubnet30,
  requireCommands,
  requireRoot,
  startIn,
  uniqueName,
  waitUntil,
  writeSecretFile,
  type NamespaceProcess,
  type Subnet30,
} from '../../scripts/lib/netns.js';
import { TSWG_BIN, startImplementation, wgKeyPair, type Implementation, type KeyPair } from '../../scripts/lib/topology.js';

export const NAT_AGENT = fileURLToPath(new URL('../../dist/scripts/nat-agent.js', import.meta.url));

export interface AgentEvent {
  event: string;
  [field: string]: unknown;
}

export interface Agent {
  process: NamespaceProcess;
  /** Every event printed so far. */
  events(): AgentEvent[];
  /** The first event named `name` (waits; rejects with the agent's output on timeout or error). */
  waitFor(name: string, timeoutMs?: number): Promise<AgentEvent>;
}

export function requireAgentBuilt(): void {
  if (!existsSync(NAT_AGENT)) throw new Error(`${NAT_AGENT} is missing: run \`npm run build\` first`);
}

export function startAgent(namespace: string, mode: 'relay-server' | 'relay-client' | 'turn-client', args: string[], verbose = true): Agent {
  const process_ = startIn(namespace, process.execPath, [NAT_AGENT, mode, ...args], {
    name: `nat-agent ${mode} in ${namespace}`,
    env: { ...process.env, LOG_LEVEL: verbose ? 'verbose' : 'error' },
  });
  const events = (): AgentEvent[] =>
    process_
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{"event"'))
      .map((line) => JSON.parse(line) as AgentEvent);
  const waitFor = async (name: string, timeoutMs = 15_000): Promise<AgentEvent> => {
    let found: AgentEvent | undefined;
    try {
      await waitUntil(
        () => {
          const all = events();
          if (all.some((e) => e.event === 'error') || !process_.running()) return true;
          found = all.find((e) => e.event === name);
          return found !== undefined;
        },
        `event '${name}' from ${process_.name}`,
        timeoutMs,
      );
    } catch (error) {
      throw new Error(`${(error as Error).message}; its output:\n${process_.output()}`);
    }
    if (found === undefined) throw new Error(`${process_.name} failed before '${name}':\n${process_.output()}`);
    return found;
  };
  return { process: process_, events, waitFor };
}

// ---- what the relay and TURN WireGuard tests share ------------------------------

/** The WireGuard port of the tunnel nodes in those tests. */
export const TUNNEL_DEVICE_PORT = 51820;

/**
 * Root, the commands and the build are preconditions of every test in the
 * file: missing ones fail each test (never a skip); the file's namespaces
 * are removed afterwards and nothing may be left.
 */
export function requireTunnelTestPreconditions(suite: string, commands: string[]): void {
  let preconditionError: Error | null = null;
  beforeAll(() => {
    try {
      requireRoot(suite);
      requireCommands('wireguard-go', 'wg', 'ip', 'ping', ...commands);
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
}

export interface TunnelNode {
  namespace: string;
  interfaceName: string;
  keys: KeyPair;
  inner: string;
  wg(...args: string[]): string;
}

/** A WireGuard interface (tswg or wireguard-go) in `namespace` with a key, the test port and `inner`/24, up. */
export async function startTunnelNode(implementation: Implementation, namespace: string, inner: string, dir: string): Promise<TunnelNode> {
  const interfaceName = uniqueName();
  await startImplementation(implementation, namespace, interfaceName);
  const keys = wgKeyPair();
  const wg = (...args: string[]) => execIn(namespace, 'wg', args);
  wg('set', interfaceName, 'private-key', writeSecretFile(dir, `${interfaceName}.key`, keys.privateKey), 'listen-port', String(TUNNEL_DEVICE_PORT));
  execIn(namespace, 'ip', ['addr', 'add', `${inner}/24`, 'dev', interfaceName]);
  execIn(namespace, 'ip', ['link', 'set', 'dev', interfaceName, 'up']);
  return { namespace, interfaceName, keys, inner, wg };
}

/**
 * Namespaces A and B, each joined by a veth /30 to a middle namespace M (the
 * relay or TURN server's): A and B reach M, never each other.
 */
export function starOfThree(): { nsA: string; nsM: string; nsB: string; netA: Subnet30; netB: Subnet30 } {
  const nsA = createNamespace();
  const nsM = createNamespace();
  const nsB = createNamespace();
  const linkA = createVethPair(nsA, { hostNamespace: nsM });
  const linkB = createVethPair(nsB, { hostNamespace: nsM });
  const netA = randomBenchmarkSubnet30();
  const netB = randomBenchmarkSubnet30();
  addressAndUp(nsM, linkA.host.name, `${netA.first}/30`);
  addressAndUp(nsA, linkA.peer.name, `${netA.second}/30`);
  addressAndUp(nsM, linkB.host.name, `${netB.first}/30`);
  addressAndUp(nsB, linkB.peer.name, `${netB.second}/30`);
  return { nsA, nsM, nsB, netA, netB };
}
