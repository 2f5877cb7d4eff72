/**
 * Drive a NAT-traversing tswg node (scripts/nat-node.ts, run from dist/, so
 * `npm run build` first) inside a network namespace: start it, talk to it
 * over its JSON-line control socket, give its TUN interface an address.
 * The process and its socket directory are in the netns cleanup registry.
 */
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { createTempDir, ip, startIn, waitUntil, type NamespaceProcess } from './netns.js';
import type { CandidateWire } from '../../src/nat/candidates.js';
import type { NatConfigSpec } from '../../src/nat/config.js';
import type { NatStatusWire } from '../../src/nat/maintenance.js';

/** scripts/nat-node.ts, compiled: beside this file in dist/, or in dist/ when this runs from the sources (vitest). */
export const NAT_NODE_SCRIPT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../nat-node.js' : '../../dist/scripts/nat-node.js', import.meta.url));
/** The TUN interface name inside each node's namespace. */
export const NAT_NODE_INTERFACE = 'wg0';

export interface PeerInfo {
  endpoint: string | null;
  lastHandshakeTimeMs: number;
  rxBytes: number;
  txBytes: number;
}

export interface NatNode {
  namespace: string;
  publicKey: string;
  listenPort: number;
  process: NamespaceProcess;
  request<T = unknown>(command: string, fields?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  configure(nat: NatConfigSpec, relayCredential?: string): Promise<void>;
  addPeer(other: NatNode | { publicKey: string }, allowedIp: string, extra?: { endpoint?: string; keepalive?: number }): Promise<void>;
  setPeerCandidates(other: NatNode | { publicKey: string }, candidates: CandidateWire[]): Promise<void>;
  tick(timeoutMs?: number): Promise<void>;
  status(): Promise<NatStatusWire>;
  peer(other: NatNode | { publicKey: string }): Promise<PeerInfo | null>;
  /** Give the TUN interface `cidr` and bring it up. */
  addressTunnel(cidr: string): void;
  stop(): Promise<void>;
}

export async function startNatNode(namespace: string, options: { env?: NodeJS.ProcessEnv } = {}): Promise<NatNode> {
  if (!existsSync(NAT_NODE_SCRIPT)) throw new Error(`${NAT_NODE_SCRIPT} is missing; run 'npm run build' first`);
  const dir = createTempDir('tswg-nat-node-');
  const controlPath = join(dir, 'control.sock');
  const child = startIn(namespace, process.execPath, [NAT_NODE_SCRIPT, '--control', controlPath, '--interface', NAT_NODE_INTERFACE], {
    name: `nat-node in ${namespace}`,
    env: { ...process.env, LOG_LEVEL: 'verbose', ...options.env },
  });
  let ready: { publicKey: string; listenPort: number } | null = null;
  await waitUntil(
    () => {
      if (!child.running()) throw new Error(`nat-node in ${namespace} exited early:\n${child.output()}`);
      const line = child
        .output()
        .split('\n')
        .find((text) => text.startsWith('{"ready":true'));
      if (line !== undefined) ready = JSON.parse(line) as { publicKey: string; listenPort: number };
      return ready !== null;
    },
    `nat-node in ${namespace} to be ready`,
    15_000,
  );
  const { publicKey, listenPort } = ready!;

  const socket: Socket = await new Promise((resolve, reject) => {
    const s = connect(controlPath, () => resolve(s));
    s.once('error', reject);
  });
  socket.setEncoding('utf8');
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let buffered = '';
  let nextId = 1;
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
      const answer = JSON.parse(buffered.slice(0, newline)) as { id: number; ok: boolean; result?: unknown; error?: string };
      buffered = buffered.slice(newline + 1);
      const waiter = pending.get(answer.id);
      pending.delete(answer.id);
      if (answer.ok) waiter?.resolve(answer.result);
      else waiter?.reject(new Error(`nat-node in ${namespace}: ${answer.error}`));
    }
  });
  socket.on('close', () => {
    for (const waiter of pending.values()) waiter.reject(new Error(`nat-node in ${namespace} closed its control socket; output:\n${child.output()}`));
    pending.clear();
  });

  const request = <T>(command: string, fields: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<T> => {
    const id = nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`nat-node in ${namespace}: '${command}' got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      pending.set(id, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      socket.write(`${JSON.stringify({ id, cmd: command, ...fields })}\n`);
    });
  };
  const keyOf = (other: NatNode | { publicKey: string }): string => other.publicKey;

  return {
    namespace,
    publicKey,
    listenPort,
    process: child,
    request,
    configure: (nat, relayCredential) => request('configure', { nat, ...(relayCredential !== undefined ? { relayCredential } : {}) }),
    addPeer: (other, allowedIp, extra = {}) => request('addPeer', { publicKey: keyOf(other), allowedIps: [allowedIp], ...extra }),
    setPeerCandidates: (other, candidates) => request('setPeerCandidates', { publicKey: keyOf(other), candidates }),
    tick: (timeoutMs = 45_000) => request('tick', {}, timeoutMs),
    status: () => request<NatStatusWire>('status'),
    peer: (other) => request<PeerInfo | null>('peer', { publicKey: keyOf(other) }),
    addressTunnel(cidr) {
      ip(namespace, 'addr', 'add', cidr, 'dev', NAT_NODE_INTERFACE);
      ip(namespace, 'link', 'set', 'dev', NAT_NODE_INTERFACE, 'up');
    },
    async stop() {
      socket.destroy();
      await child.stop();
    },
  };
}
