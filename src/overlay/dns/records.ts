/**
 * The node's zone: names registered under the deployment's domain with their
 * addresses, and what a question about a name gets.
 *
 * - A registered name answers its A / AAAA records, shuffled so clients
 *   spread over the addresses, TTL 600.
 * - A name in the domain with no record of the asked type (or a name that
 *   only has registered names below it) is NOERROR with no answers; an
 *   unknown name in the domain is NXDOMAIN. Both carry the domain's SOA, so
 *   resolvers cache the negative answer. Neither is ever forwarded: that
 *   would tell the upstream which names containers look for.
 * - A reverse name (in-addr.arpa / ip6.arpa) of a registered address answers
 *   PTR records; other names are "outside" and the server forwards them,
 *   except an address question about a single label ("web"): a client with
 *   ndots:0 asks that before its search domain, and it is NXDOMAIN here
 *   (as systemd-resolved does) rather than a leak of the name upstream.
 */
import type { Answer } from 'dns-packet';
import { isIP } from 'node:net';
import { bytesToIp, ipToBytes } from '../../device/index.js';
import { DNS_NEGATIVE_TTL_SECS, DNS_RECORD_TTL_SECS, MAX_NAME_LENGTH } from '../constants.js';
import { OverlayError } from '../errors.js';

/** A label: letters, digits, "-" inside, "_" allowed for service-style names; 1..63 characters. */
const LABEL_PATTERN = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
/** SOA timers (refresh, retry, expire): nobody transfers this zone, so only the minimum matters. */
const SOA_REFRESH_SECS = 3600;
const SOA_RETRY_SECS = 600;
const SOA_EXPIRE_SECS = 86_400;
const ADDRESS_TYPES: ReadonlySet<string> = new Set(['A', 'AAAA', 'ANY']);

export type LookupResult =
  /** NOERROR; `answers` may be empty (the name exists, the type does not). */
  | { kind: 'answer'; answers: Answer[]; authorities: Answer[] }
  | { kind: 'nxdomain'; authorities: Answer[] }
  /** Not ours: forward it. */
  | { kind: 'outside' };

/** Lower case, no trailing dot. */
export function canonicalName(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Throws OverlayError naming `what` unless `name` is a valid domain name (already canonical). */
function checkDomainName(name: string, what: string): void {
  if (name === '' || name.length > MAX_NAME_LENGTH) {
    throw new OverlayError(`invalid DNS ${what} ${JSON.stringify(name)}: expected 1..${MAX_NAME_LENGTH} characters`);
  }
  for (const label of name.split('.')) {
    if (!LABEL_PATTERN.test(label)) {
      throw new OverlayError(`invalid DNS ${what} ${JSON.stringify(name)}: label ${JSON.stringify(label)} is not 1..63 letters, digits, "-" or "_"`);
    }
  }
}

/** An address in one spelling (IPv6 compressed, lower case), so 10.0.0.1 registered twice is one record. */
export function canonicalIp(text: string): string {
  if (isIP(text) === 0) throw new OverlayError(`invalid DNS address ${JSON.stringify(text)}: expected an IPv4 or IPv6 address`);
  return bytesToIp(ipToBytes(text));
}

/** The address a reverse name stands for, null when `name` is not a complete reverse name. */
export function addressOfReverseName(name: string): string | null {
  if (name.endsWith('.in-addr.arpa')) {
    const parts = name.slice(0, -'.in-addr.arpa'.length).split('.');
    if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255)) return null;
    return parts.reverse().join('.');
  }
  if (name.endsWith('.ip6.arpa')) {
    const nibbles = name.slice(0, -'.ip6.arpa'.length).split('.');
    if (nibbles.length !== 32 || !nibbles.every((n) => /^[0-9a-f]$/.test(n))) return null;
    const hex = nibbles.reverse().join('');
    const groups = hex.match(/.{4}/g)!;
    return bytesToIp(ipToBytes(groups.join(':')));
  }
  return null;
}

/** Fisher–Yates on a copy. */
function shuffled<T>(items: readonly T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy;
}

export class DnsZone {
  /** Full name → addresses, in registration order. */
  private readonly names = new Map<string, string[]>();
  /** Address → full names (for PTR). */
  private readonly reverse = new Map<string, Set<string>>();
  /** Ancestors of registered names inside the domain → how many names lie below (they exist, with no records). */
  private readonly interior = new Map<string, number>();

  constructor(readonly domain: string) {
    checkDomainName(domain, 'domain');
  }

  /** `name` as a full name in the domain: appended when given without it; throws OverlayError naming a bad name. */
  qualify(name: string): string {
    const canonical = canonicalName(name);
    checkDomainName(canonical, 'name');
    if (canonical === this.domain) throw new OverlayError(`invalid DNS name ${JSON.stringify(name)}: it is the domain ${this.domain} itself`);
    const full = canonical.endsWith(`.${this.domain}`) ? canonical : `${canonical}.${this.domain}`;
    checkDomainName(full, 'name');
    return full;
  }

  /** Add `ip` to `name` (idempotent); returns the full name. */
  register(name: string, ip: string): string {
    const full = this.qualify(name);
    const address = canonicalIp(ip);
    const addresses = this.names.get(full);
    if (addresses === undefined) {
      this.names.set(full, [address]);
      this.changeInterior(full, 1);
    } else if (!addresses.includes(address)) {
      addresses.push(address);
    }
    let owners = this.reverse.get(address);
    if (owners === undefined) this.reverse.set(address, (owners = new Set()));
    owners.add(full);
    return full;
  }

  /** Drop every record of `name`; false when it had none. */
  unregister(name: string): boolean {
    const full = this.qualify(name);
    const addresses = this.names.get(full);
    if (addresses === undefined) return false;
    this.names.delete(full);
    this.changeInterior(full, -1);
    for (const address of addresses) {
      const owners = this.reverse.get(address);
      owners?.delete(full);
      if (owners?.size === 0) this.reverse.delete(address);
    }
    return true;
  }

  /** Registered names and their addresses (what the records file holds). */
  entries(): Record<string, string[]> {
    return Object.fromEntries([...this.names].map(([name, addresses]) => [name, [...addresses]]));
  }

  /** Address records in the zone. */
  get recordCount(): number {
    let count = 0;
    for (const addresses of this.names.values()) count += addresses.length;
    return count;
  }

  /** What a question about `name` (any spelling) of `type` gets. */
  lookup(name: string, type: string): LookupResult {
    const full = canonicalName(name);
    const reverseOf = addressOfReverseName(full);
    if (reverseOf !== null) {
      const owners = this.reverse.get(reverseOf);
      if (owners === undefined) return { kind: 'outside' };
      const answers: Answer[] = type === 'PTR' || type === 'ANY' ? [...owners].map((owner) => ({ type: 'PTR', name: full, ttl: DNS_RECORD_TTL_SECS, data: owner })) : [];
      return { kind: 'answer', answers, authorities: answers.length === 0 ? [this.soa()] : [] };
    }
    if (full === this.domain) {
      return type === 'SOA' ? { kind: 'answer', answers: [this.soa(DNS_RECORD_TTL_SECS)], authorities: [] } : { kind: 'answer', answers: [], authorities: [this.soa()] };
    }
    if (!full.includes('.') && full !== '' && ADDRESS_TYPES.has(type)) return { kind: 'nxdomain', authorities: [] };
    if (!full.endsWith(`.${this.domain}`)) return { kind: 'outside' };
    const addresses = this.names.get(full);
    if (addresses === undefined) {
      return this.interior.has(full) ? { kind: 'answer', answers: [], authorities: [this.soa()] } : { kind: 'nxdomain', authorities: [this.soa()] };
    }
    const wanted = (family: 4 | 6): boolean => (family === 4 ? type === 'A' : type === 'AAAA') || type === 'ANY';
    const answers: Answer[] = shuffled(addresses.filter((address) => wanted(isIP(address) as 4 | 6))).map((address) => ({
      type: isIP(address) === 4 ? 'A' : 'AAAA',
      name: full,
      ttl: DNS_RECORD_TTL_SECS,
      data: address,
    }));
    return { kind: 'answer', answers, authorities: answers.length === 0 ? [this.soa()] : [] };
  }

  /** The domain's SOA; its TTL and minimum are the negative-caching time. */
  private soa(ttl = DNS_NEGATIVE_TTL_SECS): Answer {
    return {
      type: 'SOA',
      name: this.domain,
      ttl,
      data: {
        mname: `ns.${this.domain}`,
        rname: `hostmaster.${this.domain}`,
        serial: 1,
        refresh: SOA_REFRESH_SECS,
        retry: SOA_RETRY_SECS,
        expire: SOA_EXPIRE_SECS,
        minimum: DNS_NEGATIVE_TTL_SECS,
      },
    };
  }

  /** Count `full`'s ancestors below the domain up or down. */
  private changeInterior(full: string, delta: 1 | -1): void {
    let rest = full;
    for (;;) {
      const dot = rest.indexOf('.');
      rest = rest.slice(dot + 1);
      if (dot < 0 || rest === this.domain) return;
      const count = (this.interior.get(rest) ?? 0) + delta;
      if (count <= 0) this.interior.delete(rest);
      else this.interior.set(rest, count);
    }
  }
}
