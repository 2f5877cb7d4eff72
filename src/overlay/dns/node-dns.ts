/**
 * The node's DNS as the engine sees it: started on the node IP when the
 * global overlay comes up (records loaded from the data directory, upstreams
 * discovered), stopped when it goes down, names registered and removed in
 * between (each change saved before it is answered Ok).
 *
 * A port that cannot be bound (another resolver on the node IP, rootless
 * without CAP_NET_BIND_SERVICE) is logged and Status says listening null:
 * the overlay itself works without DNS. Registering still works then, so
 * the names are there once the port is free and the overlay set up again.
 */
import type { Logger } from '../../device/index.js';
import { DNS_DEFAULT_DOMAIN_SUFFIX, DNS_PORT } from '../constants.js';
import { OverlayError } from '../errors.js';
import type { DnsStatusView, ResolvConfView } from '../protocol.js';
import { Forwarder } from './forwarder.js';
import { DnsRecordStore } from './record-store.js';
import { canonicalName, DnsZone } from './records.js';
import { discoverUpstreams, formatUpstream, type Upstream } from './resolv-conf.js';
import { DnsServer, type DnsCounters } from './server.js';
import { errorMessage } from '../../platform/index.js';

export interface NodeDnsOptions {
  dataDir: string;
  log: Logger;
  /** The upstreams to use instead of discovering them (tests). */
  upstreams?: Upstream[];
  /** Port to listen on (tests); default 53. */
  port?: number;
}

/** A deployment's default domain: <deployment>.internal, lower case. */
export function defaultDomain(deployment: string): string {
  return `${deployment}.${DNS_DEFAULT_DOMAIN_SUFFIX}`.toLowerCase();
}

/** Container resolv.conf options: ndots:0 sends every name as typed first, so "web" needs no search walk and outside names are not tried under the domain. */
const CONTAINER_RESOLV_OPTIONS: readonly string[] = Object.freeze(['ndots:0']);

export class NodeDns {
  private readonly store: DnsRecordStore;
  private zone: DnsZone | null = null;
  private server: DnsServer | null = null;
  private listenHost: string | null = null;
  /** Kept across restarts of the server: Status and metrics count since the daemon started. */
  readonly counters: DnsCounters = { answered: 0, forwarded: 0, refused: 0, malformed: 0 };

  constructor(private readonly options: NodeDnsOptions) {
    this.store = new DnsRecordStore(options.dataDir);
  }

  /** Load `domain`'s records and listen on nodeIp:53. Never throws: what fails is logged and Status shows it. */
  async start(nodeIp: string, domain: string): Promise<void> {
    await this.stop();
    let zone: DnsZone;
    try {
      zone = new DnsZone(canonicalName(domain));
    } catch (error) {
      this.options.log.error(`DNS not started: ${errorMessage(error)}`);
      return;
    }
    try {
      for (const [name, addresses] of Object.entries(this.store.load(zone.domain))) {
        for (const address of addresses) zone.register(name, address);
      }
    } catch (error) {
      this.options.log.error(`DNS records of ${zone.domain}: ${errorMessage(error)}; serving none until one is registered`);
    }
    this.zone = zone;
    let upstreams: Upstream[] = [];
    try {
      upstreams = this.options.upstreams ?? discoverUpstreams({ ownAddresses: [nodeIp] });
    } catch (error) {
      this.options.log.error(`DNS upstreams: ${errorMessage(error)}; names outside ${zone.domain} get SERVFAIL`);
    }
    if (upstreams.length === 0) this.options.log.error(`DNS: no upstream resolvers; names outside ${zone.domain} get SERVFAIL`);
    try {
      this.server = await DnsServer.listen({
        host: nodeIp,
        port: this.options.port ?? DNS_PORT,
        zone,
        forwarder: new Forwarder(upstreams),
        log: this.options.log,
        counters: this.counters,
      });
      this.listenHost = nodeIp;
      this.options.log.verbose(`DNS for ${zone.domain} on ${this.server.address}, upstreams ${upstreams.map(formatUpstream).join(', ') || 'none'}`);
    } catch (error) {
      this.options.log.error(`${errorMessage(error)}; containers cannot resolve through this node`);
    }
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    this.listenHost = null;
    this.zone = null;
    await server?.close().catch((error: unknown) => this.options.log.error(`stopping DNS: ${errorMessage(error)}`));
  }

  /** RegisterDns: add `ip` to `name`, saved before it returns; returns the full name. */
  register(name: string, ip: string): string {
    const zone = this.requireZone();
    const before = zone.entries();
    const full = zone.register(name, ip);
    this.saveOrRevert(zone, before, full);
    return full;
  }

  /** UnregisterDns: drop every record of `name` (Ok when it had none). */
  unregister(name: string): void {
    const zone = this.requireZone();
    const before = zone.entries();
    if (zone.unregister(name)) this.saveOrRevert(zone, before, zone.qualify(name));
  }

  status(): DnsStatusView {
    return {
      listening: this.server?.address ?? null,
      domain: this.zone?.domain ?? null,
      records: this.zone?.recordCount ?? 0,
      ...this.counters,
    };
  }

  /**
   * What a container's resolv.conf should say, for an attach that asked for
   * DNS (a server, a domain, or both): the server asked for, else this
   * node's resolver; the domain asked for, else the zone's. null when the
   * attach asked for none, or no server is known.
   */
  resolvConf(dnsServer: string | null, dnsDomain: string | null): ResolvConfView | null {
    if (dnsServer === null && dnsDomain === null) return null;
    const nameserver = dnsServer ?? this.listenHost;
    if (nameserver === null) return null;
    const domain = dnsDomain === null ? this.zone?.domain : canonicalName(dnsDomain);
    return { nameserver, search: domain === undefined ? [] : [domain], options: [...CONTAINER_RESOLV_OPTIONS] };
  }

  private requireZone(): DnsZone {
    if (this.zone === null) throw new OverlayError('global overlay not set up');
    return this.zone;
  }

  /** Save the zone; on failure put the records back as they were, so memory and disk agree. */
  private saveOrRevert(zone: DnsZone, before: Record<string, string[]>, name: string): void {
    try {
      this.store.save(zone.domain, zone.entries());
    } catch (error) {
      for (const full of Object.keys(zone.entries())) zone.unregister(full);
      for (const [full, addresses] of Object.entries(before)) for (const address of addresses) zone.register(full, address);
      throw new OverlayError(`DNS name ${name}: ${errorMessage(error)}`);
    }
  }
}
