/**
 * Where names outside the zone go: the host's resolvers.
 *
 * TSWG_DNS_UPSTREAMS (`ip[:port],…`, IPv6 as `[addr]:port` or bare) wins
 * when set. Otherwise /etc/resolv.conf's nameservers; when it names only
 * systemd-resolved's stub (127.0.0.53), the stub's own upstreams from
 * /run/systemd/resolve/resolv.conf, so answers do not depend on a second
 * local cache (the stub is kept when that file is missing). The node's own
 * addresses are dropped (forwarding to ourselves would loop), and at most
 * three are kept, in order, as glibc does.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import {
  DNS_MAX_UPSTREAMS,
  DNS_PORT,
  DNS_UPSTREAMS_ENV,
  RESOLV_CONF_PATH,
  SYSTEMD_RESOLVED_STUBS,
  SYSTEMD_RESOLVED_UPSTREAM_PATH,
} from '../constants.js';
import { OverlayError } from '../errors.js';

export interface Upstream {
  host: string;
  port: number;
}

export function formatUpstream(upstream: Upstream): string {
  return isIP(upstream.host) === 6 ? `[${upstream.host}]:${upstream.port}` : `${upstream.host}:${upstream.port}`;
}

/** The `nameserver` addresses of a resolv.conf, in order (comments, other keywords and non-addresses ignored). */
export function parseResolvConf(text: string): string[] {
  const servers: string[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    const line = rawLine.replace(/[#;].*$/, '').trim();
    const [keyword, value] = line.split(/\s+/);
    if (keyword !== 'nameserver' || value === undefined) continue;
    // A link-local IPv6 server may carry its zone (fe80::1%eth0); the address part decides.
    const address = value.split('%')[0]!;
    if (isIP(address) !== 0) servers.push(value);
  }
  return servers;
}

/** `ip[:port],…` → upstreams; throws OverlayError naming the bad entry and `source`. */
export function parseUpstreamList(text: string, source = DNS_UPSTREAMS_ENV): Upstream[] {
  const upstreams: Upstream[] = [];
  for (const rawEntry of text.split(',')) {
    const entry = rawEntry.trim();
    if (entry === '') continue;
    let host = entry;
    let portText: string | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (bracketed !== null) {
      host = bracketed[1]!;
      portText = bracketed[2];
    } else if (isIP(entry) === 0 && entry.includes(':') && entry.indexOf(':') === entry.lastIndexOf(':')) {
      [host, portText] = entry.split(':') as [string, string];
    }
    const port = portText === undefined ? DNS_PORT : Number(portText);
    if (isIP(host.split('%')[0]!) === 0 || !Number.isInteger(port) || port < 1 || port > 65_535) {
      throw new OverlayError(`invalid ${source} entry ${JSON.stringify(entry)}: expected ip[:port] (IPv6 as [addr]:port)`);
    }
    upstreams.push({ host, port });
  }
  return upstreams;
}

export interface DiscoveryOptions {
  /** Environment to read TSWG_DNS_UPSTREAMS from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** File reader (tests); null when the file is missing or unreadable. */
  readFile?: (path: string) => string | null;
  /** The node's own addresses, never used as upstreams. */
  ownAddresses?: readonly string[];
}

function readIfPresent(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The upstream resolvers, at most three; may be empty (forwarded names then get SERVFAIL). */
export function discoverUpstreams(options: DiscoveryOptions = {}): Upstream[] {
  const env = options.env ?? process.env;
  const own = new Set(options.ownAddresses ?? []);
  const keep = (list: Upstream[]): Upstream[] => list.filter((u) => !(own.has(u.host) && u.port === DNS_PORT)).slice(0, DNS_MAX_UPSTREAMS);
  const fromEnv = env[DNS_UPSTREAMS_ENV];
  if (fromEnv !== undefined && fromEnv.trim() !== '') return keep(parseUpstreamList(fromEnv));

  const read = options.readFile ?? readIfPresent;
  let servers = parseResolvConf(read(RESOLV_CONF_PATH) ?? '');
  if (servers.length > 0 && servers.every((server) => SYSTEMD_RESOLVED_STUBS.includes(server))) {
    const real = parseResolvConf(read(SYSTEMD_RESOLVED_UPSTREAM_PATH) ?? '');
    if (real.length > 0) servers = real;
  }
  return keep(servers.map((host) => ({ host, port: DNS_PORT })));
}
