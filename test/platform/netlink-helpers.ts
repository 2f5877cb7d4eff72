/**
 * Shared pieces of the privileged netlink / netns / sysctl suites: scratch
 * namespaces, `ip -j` queries inside them, and random link names.
 */
import { closeSync, openSync } from 'node:fs';
import { createNamespace, execIn, ip, listNamespaces, run } from '../../scripts/lib/netns.js';
import { withNetns, type NetnsContext } from '../../src/platform/netns.js';

/** A 6-character base36 suffix, random enough for parallel runs. */
export function randSuffix(): string {
  let out = '';
  for (let i = 0; i < 6; i++) out += '0123456789abcdefghijklmnopqrstuvwxyz'[Math.floor(Math.random() * 36)];
  return out;
}

/** A scratch namespace with helpers bound to it. */
export interface Scratch {
  name: string;
  path: string;
  /** Run helpers inside it. */
  run<T>(fn: (ns: NetnsContext) => Promise<T>): Promise<T>;
  /** `ip -n <ns> -j <args>` parsed. */
  json<T = any>(...args: string[]): T;
  /** `ip -n <ns> <args>` output. */
  ip(...args: string[]): string;
  /** A command inside it (ip netns exec). */
  exec(command: string, ...args: string[]): string;
  /** Delete it now (also registered for cleanup). */
  remove(): void;
}

export function scratchNamespace(): Scratch {
  const name = createNamespace();
  const path = `/run/netns/${name}`;
  return {
    name,
    path,
    run: (fn) => withNetns({ path }, fn),
    json: (...args) => {
      const out = ip(name, '-j', ...args).trim();
      return JSON.parse(out === '' ? '[]' : out);
    },
    ip: (...args) => ip(name, ...args),
    exec: (command, ...args) => execIn(name, command, args),
    remove: () => {
      if (listNamespaces().includes(name)) run('ip', ['netns', 'delete', name]);
    },
  };
}

/** Open a namespace file, run fn with the fd, close it. */
export async function withOpenFd<T>(path: string, fn: (fd: number) => Promise<T>): Promise<T> {
  const fd = openSync(path, 'r');
  try {
    return await fn(fd);
  } finally {
    closeSync(fd);
  }
}

export interface IpLink {
  ifindex: number;
  ifname: string;
  flags: string[];
  mtu: number;
  master?: string;
  link?: string;
  operstate?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

export interface IpAddr {
  ifindex: number;
  ifname: string;
  addr_info: { family: string; local: string; prefixlen: number; scope: string; broadcast?: string }[];
}

export interface IpRoute {
  dst: string;
  dev?: string;
  gateway?: string;
  scope?: string;
  protocol?: string;
  prefsrc?: string;
  metric?: number;
  table?: string;
  type?: string;
}

export function linkOf(scratch: Scratch, name: string): IpLink | undefined {
  return scratch.json<IpLink[]>('-d', 'link', 'show').find((link) => link.ifname === name);
}
