/**
 * The overlay node's engine: the node-level requests of the control API
 * (global overlay, IPs, peers, NAT, status, shutdown), one request at a time.
 *
 * It owns the node's one global WireGuard device: a LinuxTun, a Device and
 * its UapiServer in this process (so `wg show zl-…-g` works), plus the
 * kernel state around it (address, MTU, up, the cluster route, forwarding
 * sysctls). Everything it changes is recorded and reverted by teardown.
 *
 * handle() never throws: every failure becomes Err{message}, whose text is
 * fixed where clients match on it ("global overlay not set up", "no dedicated
 * overlay for service …", "invalid CIDR …", "invalid peer endpoint …").
 * Callers must not run two handle() calls at once (the control server and the
 * daemon serialise them), except NatTick: the control server runs it beside
 * the queue (it can take seconds), and natTick runs one at a time itself.
 *
 * Choices made on purpose:
 *  - the global device's prefix is the cluster prefix, not a hard-coded /16;
 *  - keys and the instance id persist in the data directory, so a restarted
 *    node keeps its public key, interface name and node IP;
 *  - a repeated SetupGlobalOverlay with the same slice keeps the allocations
 *    (recreating the allocator would wipe them); a different slice on
 *    a live device is refused ("tear it down first") instead of silently
 *    re-binding the allocator under live assignments.
 *  - the VM-only rule: a Global-scope peer change on a node whose setup
 *    degraded to "(host-adapter-disabled)" is skipped with a log line and Ok.
 *    On Linux a host-adapter failure is always fatal (hostAdapterFailureFatal),
 *    so this only happens elsewhere; before any setup the answer is
 *    "global overlay not set up".
 *
 * Service overlays (services/) and container attachments (attach/) live in
 * their own modules; the engine hands them the global overlay when it comes
 * up (they rebuild what the data directory remembers) and closes them
 * before it goes down. Peers added over the control socket are remembered
 * per device (runtime-peers.ts) and re-added by the next setup.
 * The node's resolver (dns/) starts on the node IP once the global device
 * is up and stops first on teardown. The firewall (firewall/) comes up
 * after the global overlay, follows the isolation members of attach and
 * detach and those other nodes host (SetRemoteIsolation, kept in
 * remote-isolation.json), and goes before the overlay does.
 */
import { join } from 'node:path';
import { formatCidr, formatEndpoint, maskBytes, parseCidr, type Cidr, Device, peerLogName, type Logger, UapiServer, uapiSocketPath } from '../device/index.js';
import { NatMaintenance, natConfigFromSpec, type NatConfig, type NatStatusWire } from '../nat/index.js';
import { decodeKey, encodeKey } from '../noise/index.js';
import {
  addAddressToLinkByName,
  addRouteViaDev,
  deleteLinkByName,
  deleteRouteViaDev,
  detectPhysicalEgress,
  readSysctl,
  setIpv6Forwarding,
  setLinkMtuByName,
  setLinkUpByName,
  setSysctl,
} from '../platform/network-config.js';
import { LinuxTun } from '../tun/index.js';
import { IpAllocator } from './allocator.js';
import { hostAdapterFailureFatal, localEndpointFor, rootlessFromEnvironment } from './build-config.js';
import {
  DEDICATED_PORT_BAND_SIZE,
  DEFAULT_CLUSTER_CIDR,
  GLOBAL_SUFFIX,
  MAX_UDP_PORT,
  HOST_ADAPTER_DISABLED_NAME,
  IPV4_FORWARD_KEY,
  MAX_KEEPALIVE_SECS,
  OVERLAY_MTU,
} from './constants.js';
import { OverlayError } from './errors.js';
import { renderMetrics } from './metrics.js';
import { makeInterfaceName } from './naming.js';
import { peerChange, peerSpecToInfo } from './peer-spec.js';
import type { PeerScope, Request, Response } from './protocol.js';
import { StateStore, type NodeState } from './state-store.js';
import { ContainerAttachments, type GlobalView } from './attach/attachments.js';
import { GLOBAL_PEER_SCOPE, RuntimePeers } from './runtime-peers.js';
import { SysctlSnapshot } from './sysctl-snapshot.js';
import { ServiceOverlays } from './services/service-overlays.js';
import { defaultDomain, NodeDns } from './dns/node-dns.js';
import type { FirewallInput } from './firewall/firewall.js';
import { NodeFirewall } from './firewall/node-firewall.js';
import { RemoteIsolation, type IsolationNetworks } from './firewall/remote-isolation.js';
import { emptyStatus, peersFromDevice, type PeerStatusView, type StatusSnapshot } from './status.js';
import { errorMessage } from '../platform/index.js';


export interface OverlayEngineOptions {
  dataDir: string;
  log: Logger;
  /** Where the global device's UAPI socket goes; default /var/run/wireguard (where wg(8) looks). */
  uapiDirectory?: string;
  /** Unspecified local endpoint, no sysctls; default: TSWG_ROOTLESS or ZLAYER_ROOTLESS set. */
  rootless?: boolean;
  /** The global device died under us (not our own close); the daemon restarts it or exits. */
  onDeviceFailure?: (reason: string) => void;
  /** false: no firewall rules at all (--no-firewall); rootless mode implies it. Default true. */
  firewall?: boolean;
}

/** What global setup changed in the kernel, so teardown can put it back. */
interface KernelChanges {
  /** Routes we added (the kernel's own prefix routes are not ours). */
  routes: Array<{ dest: string; prefixLen: number; dev: string }>;
  /** net.ipv4.ip_forward before we set it, null when we did not touch it. */
  ipv4ForwardBefore: string | null;
  /** Interfaces whose net.ipv6.conf.<if>.forwarding we set to 1. */
  ipv6ForwardingOn: string[];
}

/** The live global overlay. `device` is null for a VM-only (host-adapter-disabled) setup. */
interface GlobalOverlay {
  deployment: string;
  instanceId: string;
  interfaceName: string;
  bridgeName: string;
  clusterCidr: Cidr;
  sliceCidr: Cidr;
  nodeIp: string;
  wgPort: number;
  device: Device | null;
  uapi: UapiServer | null;
  nat: NatMaintenance | null;
  changes: KernelChanges;
}

function cidrArg(text: string): Cidr {
  try {
    return parseCidr(text);
  } catch (error) {
    throw new OverlayError(`invalid CIDR ${text}: ${errorMessage(error)}`);
  }
}

/** A CIDR field that must be a network (a slash and a prefix), not a bare address. */
function networkArg(text: string): Cidr {
  if (!text.includes('/')) throw new OverlayError(`invalid CIDR ${text}: expected address/prefix`);
  return cidrArg(text);
}

/** Whether `inner` lies inside `outer` (same family, at least as long a prefix, same leading bits). */
function cidrContains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefixLength < outer.prefixLength) return false;
  return formatCidr({ ...inner, bytes: maskBytes(inner.bytes, outer.prefixLength), prefixLength: outer.prefixLength }) === formatCidr(outer);
}

function publicKeyArg(text: string): Uint8Array {
  try {
    const key = decodeKey(text, 'public key');
    if (key.length !== 32) throw new Error(`expected 32 bytes, got ${key.length}`);
    return key;
  } catch (error) {
    throw new OverlayError(`invalid public key ${JSON.stringify(text)}: ${errorMessage(error)}`);
  }
}

function scopeName(scope: PeerScope | undefined): string {
  return scope === undefined || scope === 'global' ? GLOBAL_PEER_SCOPE : scope.service;
}


export class OverlayEngine {
  /** Set by Shutdown: the daemon exits after answering. */
  shutdownRequested = false;
  private readonly log: Logger;
  private readonly store: StateStore;
  private state: NodeState;
  private readonly rootless: boolean;
  private readonly uapiDirectory: string | undefined;
  private allocator: IpAllocator;
  private clusterCidr: string;
  private global: GlobalOverlay | null = null;
  private natConfig: NatConfig | null = null;
  /** AddPeer's wire candidates per base64 key (replayed into NatMaintenance when it starts). */
  private readonly peerCandidates = new Map<string, readonly unknown[]>();
  /** SetLocalWgPubkey records it: the orchestrator's view of this node's key, reported back in Status. */
  private localWgPubkey: string | null = null;
  private readonly services: ServiceOverlays;
  private readonly attachments: ContainerAttachments;
  private readonly runtimePeers: RuntimePeers;
  private readonly sysctlSnapshot: SysctlSnapshot;
  private readonly dns: NodeDns;
  /** Peers the config file names: re-added from the file at each start, so not remembered as runtime peers. */
  private readonly configPeerKeys = new Set<string>();
  /** "ok", or "degraded: <reason>" while the global device is dead. */
  private health = 'ok';
  private readonly onDeviceFailure: ((reason: string) => void) | undefined;
  /** The setup that made the live global overlay: what restartGlobal re-runs. */
  private lastSetup: Extract<Request, { type: 'SetupGlobalOverlay' }> | null = null;
  /** A NatTick is running (in the background of the control queue): a second one returns at once. */
  private natTickRunning = false;
  private readonly firewall: NodeFirewall;
  /** Isolation members other nodes host (SetRemoteIsolation): fenced here too. */
  private readonly remoteIsolation: RemoteIsolation;

  constructor(options: OverlayEngineOptions) {
    this.log = options.log;
    this.rootless = options.rootless ?? rootlessFromEnvironment();
    this.uapiDirectory = options.uapiDirectory;
    this.onDeviceFailure = options.onDeviceFailure;
    this.store = new StateStore(options.dataDir);
    this.state = this.store.load();
    // Until SetupGlobalOverlay the allocator is bound to the last known slice, else the default cluster.
    this.clusterCidr = this.state.clusterCidr ?? DEFAULT_CLUSTER_CIDR;
    const restored = this.restoredAllocator(this.state.sliceCidr ?? this.clusterCidr);
    if (restored.dropped.length > 0) this.saveState({ ...this.state, assignments: restored.assignments });
    this.logDropped(restored.dropped);
    this.allocator = restored.allocator;
    const serviceOptions = { dataDir: options.dataDir, log: this.log, ...(options.uapiDirectory === undefined ? {} : { uapiDirectory: options.uapiDirectory }) };
    this.services = new ServiceOverlays(serviceOptions);
    this.runtimePeers = new RuntimePeers(options.dataDir);
    this.sysctlSnapshot = new SysctlSnapshot(options.dataDir);
    this.dns = new NodeDns({ dataDir: options.dataDir, log: this.log });
    this.attachments = new ContainerAttachments({
      dataDir: options.dataDir,
      log: this.log,
      services: this.services,
      global: () => this.globalView(),
      allocateSliceIp: (label) => this.allocateIp(label),
      releaseSliceIp: (ip) => this.releaseIp(ip),
      teardownService: (service) => this.teardownService(service),
    });
    const firewallOff = this.rootless ? 'rootless mode' : options.firewall === false ? 'disabled by --no-firewall' : null;
    this.remoteIsolation = new RemoteIsolation(options.dataDir);
    this.firewall = new NodeFirewall({ dataDir: options.dataDir, log: this.log, disabledReason: firewallOff });
    void this.firewall.removeCrashLeftovers().catch((error: unknown) => this.log.error(`firewall: ${errorMessage(error)}`));
  }

  /** Save first, then adopt: a failed save (full disk) leaves the in-memory state as the file is. */
  private saveState(next: NodeState): void {
    this.store.save(next);
    this.state = next;
  }

  /** The node's public key (base64), from the state file. */
  get publicKey(): string {
    return this.state.publicKey;
  }

  /** This host's own instance id (random on first run, then kept): the default for the embedded config. */
  get instanceId(): string {
    return this.state.instanceId;
  }

  /** The global interface's name, null when no global overlay is up. */
  get interfaceName(): string | null {
    return this.global?.device == null ? null : this.global.interfaceName;
  }

  /** Start-up housekeeping before any request: links a crashed run left for processes that are gone. */
  async sweepOrphans(): Promise<void> {
    await this.attachments.sweep().catch((error: unknown) => this.log.error(`sweeping orphan veths: ${errorMessage(error)}`));
  }

  /** Mark peers as coming from the config file (a peer removed from the file must not come back from peers.json). */
  setConfigPeers(publicKeys: Iterable<string>): void {
    this.configPeerKeys.clear();
    for (const key of publicKeys) this.configPeerKeys.add(key);
  }

  /** Answer one request. Never throws. */
  async handle(request: Request): Promise<Response> {
    try {
      return await this.dispatch(request);
    } catch (error) {
      if (!(error instanceof OverlayError)) this.log.error(`${request.type}: ${errorMessage(error)}`);
      return { type: 'Err', message: errorMessage(error) };
    }
  }

  /** Tear down whatever is up (the daemon's exit path); idempotent. */
  async close(): Promise<void> {
    await this.teardownGlobal();
  }

  /** The status snapshot (also what the metrics endpoint renders). */
  status(): StatusSnapshot {
    const g = this.global;
    if (g === null) return { ...emptyStatus(this.clusterCidr), health: this.health, dns: this.dns.status() };
    const peers = this.peerViews();
    const views = this.services.statusViews((service) => this.attachments.members(service));
    return {
      health: this.health,
      interface: g.device === null ? null : g.interfaceName,
      nodeIp: g.nodeIp,
      publicKey: this.state.publicKey,
      overlayCidr: formatCidr(g.clusterCidr),
      sliceCidr: formatCidr(g.sliceCidr),
      peerCount: peers.length,
      serviceCount: views.services.length,
      peers,
      services: views.services,
      dedicatedServices: views.dedicated,
      dns: this.dns.status(),
      firewall: this.firewall.status(),
    };
  }

  /**
   * Start a handshake with every peer that has an endpoint. The daemon calls
   * it after applying its config: peers of a restarted node still hold
   * sessions the new process cannot decrypt, and would only notice after
   * 15 s of unanswered traffic (KEEPALIVE + REKEY_TIMEOUT).
   */
  greetPeers(): number {
    const device = this.global?.device;
    if (device == null) return 0;
    let started = 0;
    for (const peer of device.get().peers) {
      if (peer.endpoint !== null && device.initiateHandshake(peer.publicKey)) started++;
    }
    return started;
  }

  /**
   * Start a handshake with one global peer now. Membership calls it for a peer
   * that just appeared: the node that learns of the other last must initiate,
   * or the first packets wait for the other side's 5 s handshake retry.
   */
  greetPeer(publicKey: string): boolean {
    const device = this.global?.device;
    return device == null ? false : device.initiateHandshake(publicKeyArg(publicKey));
  }

  /** Prometheus text for the global device's peers (empty families before setup). */
  metrics(): string {
    return renderMetrics(this.interfaceName ?? '', this.peerViews(), this.health === 'ok', this.dns.counters);
  }

  private async dispatch(request: Request): Promise<Response> {
    switch (request.type) {
      case 'SetLocalNodeId':
        this.saveState({ ...this.state, localNodeId: request.nodeId });
        return { type: 'Ok' };
      case 'SetLocalWgPubkey':
        // Used by service overlays for their subnet's AllowedIPs; recorded for them.
        this.localWgPubkey = request.pubkey;
        return { type: 'Ok' };
      case 'SetupGlobalOverlay':
        return { type: 'BridgeName', name: await this.setupGlobal(request) };
      case 'TeardownGlobalOverlay':
        await this.teardownGlobal();
        return { type: 'Ok' };
      case 'AllocateIp':
        return { type: 'Ip', ip: this.allocateServiceIp(request.service) };
      case 'ReleaseIp':
        if (!this.services.releaseIp(request.ip)) this.releaseIp(request.ip);
        return { type: 'Ok' };
      case 'AddPeer':
        await this.addPeer(request.peer, request.scope);
        return { type: 'Ok' };
      case 'RemovePeer':
        await this.removePeer(request.pubkey, request.scope);
        return { type: 'Ok' };
      case 'AddAllowedIp':
        await this.changeAllowedIp(request.pubkey, request.cidr, request.scope, 'add');
        return { type: 'Ok' };
      case 'RemoveAllowedIp':
        await this.changeAllowedIp(request.pubkey, request.cidr, request.scope, 'remove');
        return { type: 'Ok' };
      case 'SetupServiceOverlay':
        return { type: 'ServiceOverlay', ...(await this.services.setup(request.service, request.mode)) };
      case 'TeardownServiceOverlay':
        await this.teardownService(request.service);
        await this.firewall.update(this.firewallInput());
        return { type: 'Ok' };
      case 'AttachContainer': {
        const attached = await this.attachments.attach(request);
        await this.isolateOrDetach(request);
        return attached.type === 'Attached' ? { ...attached, resolvConf: this.dns.resolvConf(request.dnsServer, request.dnsDomain) } : attached;
      }
      case 'DetachContainer':
        await this.attachments.detach(request.handle);
        await this.firewall.update(this.firewallInput());
        return { type: 'Ok' };
      case 'PruneOrphanBridges':
        return { type: 'PrunedBridges', reclaimed: await this.services.prune(request.liveBridgeNames) };
      case 'Status':
        return { type: 'Status', ...this.status() };
      case 'NatTick':
        await this.natTick();
        return { type: 'Ok' };
      case 'NatStatus':
        return { type: 'NatStatus', ...this.natStatus() };
      case 'Shutdown':
        this.shutdownRequested = true;
        await this.teardownGlobal();
        return { type: 'Ok' };
      case 'RegisterDns':
        this.dns.register(request.name, request.ip);
        return { type: 'Ok' };
      case 'UnregisterDns':
        this.dns.unregister(request.name);
        return { type: 'Ok' };
      case 'SetRemoteIsolation':
        await this.setRemoteIsolation(request.node, request.networks);
        return { type: 'Ok' };
    }
  }

  // ---- global overlay ---------------------------------------------------------

  private async setupGlobal(request: Extract<Request, { type: 'SetupGlobalOverlay' }>): Promise<string> {
    const cluster = networkArg(request.clusterCidr);
    const slice = request.sliceCidr === undefined || request.sliceCidr === null ? cluster : networkArg(request.sliceCidr);
    if (slice.family !== cluster.family) throw new OverlayError(`invalid CIDR ${request.sliceCidr}: the slice and the cluster ${request.clusterCidr} differ in IP family`);
    if (!cidrContains(cluster, slice)) throw new OverlayError(`invalid CIDR ${request.sliceCidr}: the slice is not inside the cluster ${request.clusterCidr}`);
    let natConfig = this.natConfig;
    if (request.nat !== undefined && request.nat !== null) {
      try {
        natConfig = natConfigFromSpec(request.nat);
      } catch (error) {
        throw new OverlayError(`invalid NAT config: ${errorMessage(error)}`);
      }
    }
    const name = makeInterfaceName([request.deployment, request.instanceId], GLOBAL_SUFFIX);

    const live = this.global;
    if (live !== null) {
      if (live.interfaceName !== name || formatCidr(live.sliceCidr) !== formatCidr(slice) || formatCidr(live.clusterCidr) !== formatCidr(cluster)) {
        throw new OverlayError(
          `global overlay already set up as ${live.interfaceName} (cluster ${formatCidr(live.clusterCidr)}, slice ${formatCidr(live.sliceCidr)}); tear it down first`,
        );
      }
      this.natConfig = natConfig;
      live.nat?.setConfig(natConfig);
      this.log.verbose(`global overlay ${name} already up; reusing it`);
      return live.bridgeName;
    }

    const sliceText = formatCidr(slice);
    // A new slice's allocator is built aside: the old one and its assignments stay until the setup has succeeded.
    const restored = sliceText === this.allocator.cidrText ? null : this.restoredAllocator(sliceText);
    const allocator = restored?.allocator ?? this.allocator;
    const nodeIp = allocator.nodeIp;
    const g: GlobalOverlay = {
      deployment: request.deployment,
      instanceId: request.instanceId,
      interfaceName: name,
      bridgeName: name,
      clusterCidr: cluster,
      sliceCidr: slice,
      nodeIp,
      wgPort: request.wgPort,
      device: null,
      uapi: null,
      nat: null,
      changes: { routes: [], ipv4ForwardBefore: null, ipv6ForwardingOn: [] },
    };

    try {
      await this.createDevice(g);
    } catch (error) {
      await this.revertKernel(g);
      if (hostAdapterFailureFatal(request.hostAdapterMandatory)) {
        throw error instanceof OverlayError ? error : new OverlayError(`cannot create the global overlay ${name}: ${errorMessage(error)}`);
      }
      this.log.error(`global overlay ${name}: no host adapter (${errorMessage(error)}); continuing as a VM-only overlay`);
      g.bridgeName = HOST_ADAPTER_DISABLED_NAME;
    }
    const next: NodeState = {
      ...this.state,
      ...(restored === null ? {} : { assignments: restored.assignments }),
      deployment: request.deployment,
      interfaceName: name,
      wgPort: request.wgPort,
      clusterCidr: formatCidr(cluster),
      sliceCidr: sliceText,
      nodeIp,
    };
    try {
      this.store.save(next);
    } catch (error) {
      await this.revertKernel(g);
      throw error;
    }
    this.state = next;
    this.logDropped(restored?.dropped ?? []);
    this.natConfig = natConfig;
    this.allocator = allocator;
    this.clusterCidr = formatCidr(cluster);
    this.global = g;
    this.lastSetup = request;
    if (g.device !== null) {
      // What the data directory remembers is best-effort: the global overlay is up either way.
      await this.restoreNode(g).catch((error: unknown) => this.log.error(`restoring services, peers and attachments: ${errorMessage(error)}`));
    }
    if (g.device !== null) await this.dns.start(nodeIp, request.dnsDomain ?? defaultDomain(request.deployment));
    if (g.device !== null) {
      try {
        await this.firewall.start(this.firewallInput());
      } catch (error) {
        // A node that cannot fence its containers does not come up half-configured.
        await this.teardownGlobal();
        throw new OverlayError(`global overlay ${name}: ${errorMessage(error)}`);
      }
    }
    return g.bridgeName;
  }

  /** This node's isolation networks and their members' addresses (what other nodes must fence too). */
  localIsolation(): IsolationNetworks {
    const networks: IsolationNetworks = {};
    for (const record of this.attachments.list()) {
      if (record.isolationNetwork === null) continue;
      (networks[record.isolationNetwork] ??= []).push(record.ip, ...(record.globalIp === null ? [] : [record.globalIp]));
    }
    // Sorted: the same members always publish the same record.
    return Object.fromEntries(Object.keys(networks).sort().map((name) => [name, [...new Set(networks[name])].sort()]));
  }

  /** SetRemoteIsolation: what another node hosts, saved, then fenced (an unchanged list changes nothing). */
  private async setRemoteIsolation(node: string, networks: IsolationNetworks): Promise<void> {
    const key = encodeKey(publicKeyArg(node));
    if (key === this.state.publicKey) throw new OverlayError(`node ${node} is this node's own public key: its members come from its attachments`);
    if (this.remoteIsolation.set(key, networks)) await this.firewall.update(this.firewallInput());
  }

  /** What the firewall rules are built from: the node's addresses and ports and the isolation members, local and remote. */
  private firewallInput(): FirewallInput {
    const g = this.global;
    const local = Object.entries(this.localIsolation()).flatMap(([network, ips]) => ips.map((ip) => ({ ip, network })));
    const members = [...local, ...this.remoteIsolation.members()];
    const wgPort = g?.wgPort ?? 0;
    return {
      clusterCidr: g === null ? this.clusterCidr : formatCidr(g.clusterCidr),
      nodeIp: g?.nodeIp ?? '',
      wgPorts: { first: wgPort, last: Math.min(MAX_UDP_PORT, wgPort + DEDICATED_PORT_BAND_SIZE) },
      members,
      masquerade: this.attachments.list().length > 0,
    };
  }

  /** An isolation member the firewall cannot fence is detached again (never left reachable from other networks). */
  private async isolateOrDetach(request: Extract<Request, { type: 'AttachContainer' }>): Promise<void> {
    try {
      await this.firewall.update(this.firewallInput());
    } catch (error) {
      if (request.isolationNetwork === null || request.isolationNetwork === undefined) throw error;
      await this.attachments.detach(request.handle).catch(() => undefined);
      throw new OverlayError(`isolation network ${request.isolationNetwork}: ${errorMessage(error)}`);
    }
  }

  /**
   * The global device died (its interface deleted, its UDP socket gone):
   * tear down what is left and run the same setup again, with the same
   * peers. Throws when that fails; the node then stays degraded.
   */
  async restartGlobal(): Promise<void> {
    const g = this.global;
    const setup = this.lastSetup;
    if (g === null || setup === null) return;
    const peers = g.device?.get().peers ?? [];
    this.global = null;
    await this.revertKernel(g);
    await this.setupGlobal(setup);
    // setupGlobal set this.global again (TypeScript still sees the null above).
    const device = (this.global as GlobalOverlay | null)?.device;
    if (device == null) throw new OverlayError(`the global overlay ${g.interfaceName} came back without its device`);
    if (peers.length > 0) {
      await device.set({
        replacePeers: false,
        peers: peers.map((peer) =>
          peerChange(peer.publicKey, {
            ...(peer.presharedKey === null ? {} : { presharedKey: peer.presharedKey }),
            ...(peer.endpoint === null ? {} : { endpoint: peer.endpoint }),
            persistentKeepaliveInterval: peer.persistentKeepaliveInterval,
            replaceAllowedIps: true,
            allowedIps: peer.allowedIps,
          }),
        ),
      });
    }
    this.health = 'ok';
    this.log.verbose(`global overlay ${g.interfaceName} restarted with ${peers.length} peer(s)`);
  }

  /** What the data directory remembers for a fresh global overlay: runtime peers, service overlays, attachments. */
  private async restoreNode(g: GlobalOverlay): Promise<void> {
    for (const spec of this.runtimePeers.peers(GLOBAL_PEER_SCOPE)) {
      await this.addPeer(spec, 'global').catch((error: unknown) => this.log.error(`re-adding ${peerLogName(spec.publicKey)}: ${errorMessage(error)}`));
    }
    await this.services.rehydrate({
      deployment: g.deployment,
      instanceId: g.instanceId,
      clusterCidr: formatCidr(g.clusterCidr),
      sliceCidr: formatCidr(g.sliceCidr),
      nodeIp: g.nodeIp,
      wgPort: g.wgPort,
      nodeKey: this.state.localNodeId === undefined ? this.state.publicKey : `node-${this.state.localNodeId}`,
      globalInterface: g.interfaceName,
      routedElsewhere: () => (g.device === null ? [] : g.device.get().peers.flatMap((peer) => peer.allowedIps.map(formatCidr))),
    });
    for (const service of this.services.serviceNames()) {
      for (const spec of this.runtimePeers.peers(service)) {
        await this.addPeer(spec, { service }).catch((error: unknown) => this.log.error(`re-adding ${peerLogName(spec.publicKey)} of ${service}: ${errorMessage(error)}`));
      }
    }
    await this.attachments.recover();
  }

  private globalView(): GlobalView | null {
    const g = this.global;
    if (g === null) return null;
    return {
      interfaceName: g.interfaceName,
      nodeIp: g.nodeIp,
      clusterCidr: formatCidr(g.clusterCidr),
      slicePrefixLength: g.sliceCidr.prefixLength,
      wgPort: g.wgPort,
      publicKey: this.state.publicKey,
      device: g.device,
    };
  }

  /** A service's members go first, then its overlay (also what the last ephemeral member's detach runs). */
  private async teardownService(service: string): Promise<void> {
    await this.attachments.detachService(service);
    await this.services.teardown(service);
    this.runtimePeers.dropScope(service);
  }

  /** Stale link out, TUN + Device + UAPI up, keys and port set, kernel configured. Records what it changed in g. */
  private async createDevice(g: GlobalOverlay): Promise<void> {
    const name = g.interfaceName;
    try {
      // A crashed earlier run may have left the interface behind (a persistent TUN or a stuck link).
      await deleteLinkByName(name);
    } catch (error) {
      this.log.verbose(`removing a stale ${name} failed (continuing): ${errorMessage(error)}`);
    }
    let egress: { address: string } | null = null;
    if (!this.rootless) {
      try {
        const found = await detectPhysicalEgress({ logger: { warn: (message: string) => this.log.verbose(`egress: ${message}`) } });
        egress = { address: found.ip };
      } catch (error) {
        this.log.error(`physical egress detection failed, using the unspecified address: ${errorMessage(error)}`);
      }
    }
    const local = localEndpointFor(g.nodeIp, g.wgPort, egress, this.rootless, (message) => this.log.error(message));
    const tun = LinuxTun.create(name, OVERLAY_MTU);
    const device = new Device({ tun, log: this.log });
    g.device = device;
    const socketPath = this.uapiDirectory === undefined ? uapiSocketPath(name) : join(this.uapiDirectory, `${name}.sock`);
    try {
      g.uapi = await UapiServer.listen(socketPath, device, (message) => this.log.error(message));
      await device.start();
      await device.set({ privateKey: decodeKey(this.state.privateKey, 'private key'), listenPort: g.wgPort, replacePeers: false, peers: [] });
    } catch (error) {
      await this.closeDevice(g);
      throw new OverlayError(`cannot start the global overlay ${name} on UDP port ${g.wgPort}: ${errorMessage(error)}`);
    }
    device.onClose((error) => {
      // Our own close clears g.device first; anything else is the device dying under us.
      if (this.global !== g || g.device !== device) return;
      const reason = `global overlay ${name} stopped: ${error?.message ?? 'closed'}`;
      this.log.error(reason);
      this.health = `degraded: ${reason}`;
      this.onDeviceFailure?.(reason);
    });
    this.log.verbose(`global overlay ${name}: node ${g.nodeIp}, local endpoint ${formatEndpoint(local)}, UAPI ${socketPath}`);

    await setLinkMtuByName(name, OVERLAY_MTU);
    await addAddressToLinkByName(name, g.nodeIp, g.clusterCidr.prefixLength);
    await setLinkUpByName(name);
    const dest = formatCidr(g.clusterCidr).split('/')[0]!;
    try {
      await addRouteViaDev(dest, g.clusterCidr.prefixLength, name);
      g.changes.routes.push({ dest, prefixLen: g.clusterCidr.prefixLength, dev: name });
    } catch (error) {
      // The address brings the kernel's own prefix route for the cluster; that one is fine (EEXIST for it is expected, not a failure).
      if ((error as { code?: string }).code !== 'EEXIST') throw error;
    }
    if (!this.rootless) await this.enableForwarding(g);
  }

  /** The node routes for its slice's containers: IPv4 globally (snapshot first), IPv6 per interface only. */
  private async enableForwarding(g: GlobalOverlay): Promise<void> {
    try {
      if (g.clusterCidr.family === 4) {
        // A run killed before it could restore the value left its own "1" behind: the saved original wins.
        let before = this.sysctlSnapshot.ipv4ForwardBefore();
        if (before === null) {
          try {
            before = await readSysctl(IPV4_FORWARD_KEY);
          } catch {
            before = '0'; // unreadable counts as off: teardown restores 0
          }
          this.sysctlSnapshot.save(before);
        }
        g.changes.ipv4ForwardBefore = before;
        if (before !== '1') await setSysctl(IPV4_FORWARD_KEY, '1');
      } else {
        await setIpv6Forwarding(g.interfaceName, true);
        g.changes.ipv6ForwardingOn.push(g.interfaceName);
      }
    } catch (error) {
      // Never fatal: a node without forwarding still reaches its peers.
      this.log.error(`enabling forwarding for ${g.interfaceName} failed: ${errorMessage(error)}`);
    }
  }

  private async closeDevice(g: GlobalOverlay): Promise<void> {
    const nat = g.nat;
    g.nat = null;
    await nat?.close().catch((error: unknown) => this.log.error(`stopping NAT traversal: ${errorMessage(error)}`));
    const uapi = g.uapi;
    g.uapi = null;
    await uapi?.close().catch((error: unknown) => this.log.error(`closing ${uapi.path}: ${errorMessage(error)}`));
    const device = g.device;
    g.device = null;
    await device?.close();
  }

  /** Routes, the link, then the forwarding sysctls, each best-effort and idempotent. */
  private async revertKernel(g: GlobalOverlay): Promise<void> {
    await this.closeDevice(g);
    for (const route of g.changes.routes.splice(0)) {
      await deleteRouteViaDev(route.dest, route.prefixLen, route.dev).catch((error: unknown) =>
        this.log.error(`deleting route ${route.dest}/${route.prefixLen} dev ${route.dev}: ${errorMessage(error)}`),
      );
    }
    await deleteLinkByName(g.interfaceName).catch((error: unknown) => this.log.error(`deleting ${g.interfaceName}: ${errorMessage(error)}`));
    const before = g.changes.ipv4ForwardBefore;
    g.changes.ipv4ForwardBefore = null;
    if (before !== null) {
      await setSysctl(IPV4_FORWARD_KEY, before)
        .then(() => this.sysctlSnapshot.clear())
        .catch((error: unknown) => this.log.error(`restoring ${IPV4_FORWARD_KEY}=${before}: ${errorMessage(error)}`));
    }
    for (const ifname of g.changes.ipv6ForwardingOn.splice(0)) {
      // The interface is gone with the device; the file with it. Only a survivor needs the reset.
      await setIpv6Forwarding(ifname, false).catch(() => undefined);
    }
  }

  private async teardownGlobal(): Promise<void> {
    const g = this.global;
    if (g === null) return;
    await this.dns.stop();
    // Containers and service overlays first: their links hang off the node's routes and forwarding.
    await this.attachments.close().catch((error: unknown) => this.log.error(`detaching containers: ${errorMessage(error)}`));
    await this.services.close().catch((error: unknown) => this.log.error(`removing service overlays: ${errorMessage(error)}`));
    await this.firewall.stop().catch((error: unknown) => this.log.error(errorMessage(error)));
    this.global = null;
    await this.revertKernel(g);
    this.log.verbose(`global overlay ${g.interfaceName} torn down`);
  }

  // ---- addresses ----------------------------------------------------------------

  /**
   * An allocator for `cidr` with this node's persisted assignments claimed
   * (those outside it are dropped: they belonged to another slice). Changes
   * nothing: the caller adopts the result once it is sure (a failed setup
   * keeps the old slice's assignments).
   */
  private restoredAllocator(cidr: string): { allocator: IpAllocator; assignments: Record<string, string>; dropped: string[] } {
    const allocator = new IpAllocator(cidr);
    const kept: Record<string, string> = {};
    const dropped: string[] = [];
    for (const [ip, service] of Object.entries(this.state.assignments)) {
      try {
        allocator.claim(ip);
        kept[ip] = service;
      } catch (error) {
        dropped.push(`dropped the saved assignment of ${ip} (${service}): ${errorMessage(error)}`);
      }
    }
    return { allocator, assignments: kept, dropped };
  }

  private logDropped(lines: readonly string[]): void {
    for (const line of lines) this.log.error(line);
  }

  /** AllocateIp: the service's bridge pool when it has one here, else the node slice. */
  private allocateServiceIp(service: string): string {
    return this.services.allocateIp(service) ?? this.allocateIp(service);
  }

  private allocateIp(service: string): string {
    const ip = this.allocator.allocate();
    try {
      this.saveState({ ...this.state, assignments: { ...this.state.assignments, [ip]: service } });
    } catch (error) {
      this.allocator.release(ip);
      throw error;
    }
    return ip;
  }

  private releaseIp(ip: string): void {
    if (!(ip in this.state.assignments)) {
      this.allocator.release(ip);
      return;
    }
    const assignments = { ...this.state.assignments };
    delete assignments[ip];
    this.saveState({ ...this.state, assignments });
    this.allocator.release(ip);
  }

  // ---- peers --------------------------------------------------------------------

  /** The global device for a peer change, null for a VM-only overlay (skip, Ok). */
  private deviceFor(scope: PeerScope | undefined, what: string): Device | null {
    if (scope !== undefined && scope !== 'global') return this.services.dedicatedDevice(scope.service).device;
    const g = this.global;
    if (g === null) throw new OverlayError('global overlay not set up');
    if (g.device === null) this.log.verbose(`${what}: no host adapter (VM-only overlay); skipped on this node`);
    return g.device;
  }

  private async addPeer(spec: Extract<Request, { type: 'AddPeer' }>['peer'], scope: PeerScope | undefined): Promise<void> {
    // The spec is parsed first, so a bad endpoint is an error whatever the scope: the answer does not depend on which device would take the peer.
    const info = peerSpecToInfo(spec);
    if (info.persistentKeepaliveSecs > MAX_KEEPALIVE_SECS) {
      throw new OverlayError(`invalid persistent keepalive ${info.persistentKeepaliveSecs}: at most ${MAX_KEEPALIVE_SECS} seconds`);
    }
    if (info.publicKeyBase64 === this.state.publicKey) throw new OverlayError(`peer ${info.publicKeyBase64} is this node's own public key`);
    const device = this.deviceFor(scope, 'AddPeer');
    const fromConfig = this.configPeerKeys.has(info.publicKeyBase64);
    if (fromConfig) {
      // CIDRs the orchestrator added at run time (another node's service subnet) survive a restart.
      const known = new Set(info.allowedIps.map(formatCidr));
      for (const text of this.runtimePeers.extraAllowedIps(scopeName(scope), info.publicKeyBase64)) {
        if (!known.has(text)) info.allowedIps.push(cidrArg(text));
      }
    }
    if (device !== null) {
      await device.set({
        replacePeers: false,
        peers: [
          peerChange(info.publicKey, {
            ...(info.endpoint === null ? {} : { endpoint: info.endpoint }),
            persistentKeepaliveInterval: info.persistentKeepaliveSecs,
            replaceAllowedIps: true,
            allowedIps: info.allowedIps,
          }),
        ],
      });
    }
    await this.afterPeerChange(scope);
    if (!fromConfig) this.runtimePeers.upsert(scopeName(scope), { ...spec, allowedIps: info.allowedIps.map(formatCidr).join(',') });
    const candidates = spec.candidates ?? [];
    if (candidates.length === 0) this.peerCandidates.delete(info.publicKeyBase64);
    else this.peerCandidates.set(info.publicKeyBase64, candidates);
    this.global?.nat?.setPeerCandidates(info.publicKey, candidates);
  }

  private async removePeer(pubkey: string, scope: PeerScope | undefined): Promise<void> {
    const key = publicKeyArg(pubkey);
    const device = this.deviceFor(scope, 'RemovePeer');
    if (device !== null) await device.set({ replacePeers: false, peers: [peerChange(key, { remove: true })] });
    await this.afterPeerChange(scope);
    this.runtimePeers.remove(scopeName(scope), encodeKey(key));
    if (scopeName(scope) === GLOBAL_PEER_SCOPE && this.remoteIsolation.drop(encodeKey(key))) await this.firewall.update(this.firewallInput());
    this.peerCandidates.delete(Buffer.from(key).toString('base64'));
    this.global?.nat?.removePeer(key);
  }

  private async changeAllowedIp(pubkey: string, cidrText: string, scope: PeerScope | undefined, how: 'add' | 'remove'): Promise<void> {
    const cidr = cidrArg(cidrText);
    const key = publicKeyArg(pubkey);
    const device = this.deviceFor(scope, how === 'add' ? 'AddAllowedIp' : 'RemoveAllowedIp');
    if (device === null) return;
    const hex = Buffer.from(key).toString('hex');
    const peer = device.get().peers.find((p) => Buffer.from(p.publicKey).toString('hex') === hex);
    if (peer === undefined) throw new OverlayError(`unknown peer ${pubkey} on the ${scopeName(scope) === GLOBAL_PEER_SCOPE ? 'global overlay' : `dedicated overlay of ${scopeName(scope)}`}`);
    const text = formatCidr(cidr);
    const others = peer.allowedIps.filter((entry) => formatCidr(entry) !== text);
    const after = how === 'add' ? [...others, cidr] : others;
    if (how === 'add') await device.set({ replacePeers: false, peers: [peerChange(key, { updateOnly: true, allowedIps: [cidr] })] });
    else await device.set({ replacePeers: false, peers: [peerChange(key, { updateOnly: true, replaceAllowedIps: true, allowedIps: others })] });
    await this.afterPeerChange(scope);
    const scopeKey = scopeName(scope);
    if (this.runtimePeers.isRecorded(scopeKey, encodeKey(key))) this.runtimePeers.setAllowedIps(scopeKey, encodeKey(key), after.map(formatCidr));
    else this.runtimePeers.changeExtra(scopeKey, encodeKey(key), text, how);
  }

  /** A dedicated device routes its peers' allowed IPs through itself; the global device has the cluster route. */
  private async afterPeerChange(scope: PeerScope | undefined): Promise<void> {
    if (scope !== undefined && scope !== 'global') await this.services.dedicatedDevice(scope.service).syncRoutes();
  }

  private peerViews(): PeerStatusView[] {
    const g = this.global;
    if (g === null || g.device === null) return [];
    const types = g.nat === null ? undefined : new Map<string, string>(g.nat.status().peers.map((p) => [p.nodeId, p.connectionType]));
    return peersFromDevice(g.device.get(), types);
  }

  // ---- NAT ----------------------------------------------------------------------

  /**
   * NatTick: start NAT maintenance on the first call (its tick gathers the
   * candidates lazily), then refresh and reconnect the peers without a
   * handshake in the last 75 s. Nothing to do without a global device.
   */
  private async natTick(): Promise<void> {
    await this.firewall.reconcile();
    const g = this.global;
    if (g === null || g.device === null) {
      this.log.verbose('NatTick: no global device; nothing to do');
      return;
    }
    // The control server runs NatTick beside the queue; one tick at a time, a second one is a no-op.
    if (this.natTickRunning) {
      this.log.verbose('NatTick: a tick is already running');
      return;
    }
    if (g.nat === null) {
      const nat = new NatMaintenance(g.device, this.natConfig, { log: this.log });
      for (const [key, candidates] of this.peerCandidates) nat.setPeerCandidates(key, candidates);
      g.nat = nat;
    }
    this.natTickRunning = true;
    try {
      await g.nat.tick();
    } catch (error) {
      throw new OverlayError(errorMessage(error));
    } finally {
      this.natTickRunning = false;
    }
  }

  private natStatus(): NatStatusWire {
    return this.global?.nat?.status() ?? { candidates: [], peers: [], lastRefresh: 0 };
  }
}
