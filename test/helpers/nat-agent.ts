/**
 * Runs scripts/nat-agent.ts (from dist/) inside a network namespace and reads
 * the JSON events it prints: the relay and TURN WireGuard tests use it to put
 * a relay server, a relay client or a TURN client next to a device.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startIn, waitUntil, type NamespaceProcess } from '../../scripts/lib/netns.js';

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
