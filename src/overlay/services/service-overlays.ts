/**
 * Service overlays on this node: the network a service's containers join.
 *
 *   auto       its own bridge (zl-…-b) over its own subnet of the cluster
 *   shared     the one node-wide bridge (zl-…-sh) every shared service uses
 *   dedicated  its own bridge plus its own WireGuard device (zl-…-d)
 *
 * Each (service, node) gets a /26 (IPv6: /120) of the cluster CIDR from the
 * subnet registry, never overlapping this node's slice, the node IP or any
 * CIDR the global device routes to another node. The gateway is the
 * subnet's first usable address; containers draw from the bridge's pool.
 * The subnet is in the answer because the other nodes must route it here
 * (AddAllowedIp {this node's key, subnet} on each of them).
 *
 * Service overlays need the global overlay (its cluster CIDR, slice and
 * node IP decide the subnets): a registry built on a default CIDR, because a
 * service came first, would never be rebuilt.
 *
 * A service's record (mode, subnet, a dedicated device's interface, port and
 * public key) is saved before the kernel is touched and removed when a setup
 * fails, so a crash leaves nothing the next start cannot rebuild or prune.
 * close() (global teardown, shutdown) removes every bridge and device but
 * keeps the records: the next SetupGlobalOverlay rebuilds the overlays with
 * the same subnets, keys and ports (rehydrate()).
 */
import { bytesToIp, formatCidr, parseCidr, type Device, type Logger } from '../../device/index.js';
import { listAllLinks } from '../../platform/network-config.js';
import { IpAllocator, bigIntToBytes, bytesToBigInt } from '../allocator.js';
import {
  BRIDGE_SUFFIX,
  DEDICATED_DEVICE_OFFSET,
  DEDICATED_SUFFIX,
  SHARED_BRIDGE_PART,
  SHARED_BRIDGE_SUFFIX,
} from '../constants.js';
import { OverlayError } from '../errors.js';
import { KeyFiles } from '../key-file.js';
import { makeInterfaceName } from '../naming.js';
import type { DedicatedServiceStatusView, OverlayMode, ServiceOverlayInfo, ServiceStatusView } from '../protocol.js';
import { bridgeMembers, ensureBridge, removeBridge } from './bridges.js';
import { DedicatedOverlay } from './dedicated.js';
import { selectOrphanBridges, serviceForInterface } from './orphan-bridges.js';
import { DedicatedPortAllocator } from './port-band.js';
import { ServiceStore, type SavedService, type ServicesDocument } from './service-store.js';
import { SHARED_BRIDGE_KEY, ServiceSubnetRegistry } from './subnet-registry.js';
import { errorMessage } from '../../platform/index.js';

/** What the global overlay tells the service overlays. */
export interface NodeContext {
  deployment: string;
  instanceId: string;
  clusterCidr: string;
  sliceCidr: string;
  nodeIp: string;
  wgPort: number;
  /** The registry key of this node (its node id, else its public key). */
  nodeKey: string;
  globalInterface: string | null;
  /** CIDRs the global device routes to other nodes right now. */
  routedElsewhere(): string[];
}

/** A bridge and the address pool of its subnet (the pool's reserved "node IP" is the gateway). */
export interface ServiceBridge {
  name: string;
  subnet: string;
  gateway: string;
  prefixLength: number;
  pool: IpAllocator;
  registryKey: string;
}

interface ServiceOverlay {
  name: string;
  mode: OverlayMode;
  bridge: ServiceBridge;
  dedicated: DedicatedOverlay | null;
  /** Addresses AllocateIp handed out of the bridge's pool for this service. */
  allocated: Set<string>;
}

export interface ServiceOverlaysOptions {
  dataDir: string;
  log: Logger;
  uapiDirectory?: string;
}

export class ServiceOverlays {
  private readonly log: Logger;
  private readonly store: ServiceStore;
  private readonly keys: KeyFiles;
  private readonly uapiDirectory: string | undefined;
  private doc: ServicesDocument;
  private context: NodeContext | null = null;
  private registry: ServiceSubnetRegistry | null = null;
  /** Why the registry could not be built for this cluster (e.g. a cluster smaller than one service subnet). */
  private registryError: string | null = null;
  private ports: DedicatedPortAllocator | null = null;
  private readonly services = new Map<string, ServiceOverlay>();
  private shared: ServiceBridge | null = null;

  constructor(options: ServiceOverlaysOptions) {
    this.log = options.log;
    this.store = new ServiceStore(options.dataDir);
    this.keys = new KeyFiles(options.dataDir);
    this.uapiDirectory = options.uapiDirectory;
    this.doc = this.store.load();
  }

  // ---- lifecycle with the global overlay ------------------------------------------

  /** The global overlay is up: bind the registry to its cluster and rebuild the saved overlays. */
  async rehydrate(context: NodeContext): Promise<void> {
    if (this.registry !== null && this.context?.clusterCidr === context.clusterCidr && this.context.sliceCidr === context.sliceCidr) {
      // The global device was restarted under live overlays: they stay as they are.
      this.context = context;
      return;
    }
    this.context = context;
    try {
      const registry = new ServiceSubnetRegistry(context.clusterCidr);
      registry.reserve(context.sliceCidr);
      registry.reserve(context.nodeIp);
      this.registry = registry;
      this.registryError = null;
    } catch (error) {
      this.registryError = `no service overlays on this node: ${errorMessage(error)}`;
      this.log.error(this.registryError);
      return;
    }
    this.ports = new DedicatedPortAllocator(context.wgPort, this.doc.services.flatMap((s) => (s.dedicated === undefined ? [] : [s.dedicated.port])));
    for (const saved of [...this.doc.services]) {
      try {
        await this.build(saved);
        this.log.verbose(`service overlay ${saved.name} (${saved.mode}, ${saved.subnet}) restored`);
      } catch (error) {
        this.log.error(`service overlay ${saved.name} could not be restored and is dropped: ${errorMessage(error)}`);
        this.forget(saved.name);
      }
    }
  }

  /** Remove every bridge and dedicated device (records are kept for the next rehydrate). */
  async close(): Promise<void> {
    for (const overlay of this.services.values()) {
      await overlay.dedicated?.close();
      if (overlay.bridge !== this.shared) await removeBridge(overlay.bridge.name, this.log);
    }
    if (this.shared !== null) await removeBridge(this.shared.name, this.log);
    this.services.clear();
    this.shared = null;
    this.registry = null;
    this.registryError = null;
    this.ports = null;
    this.context = null;
  }

  // ---- requests -------------------------------------------------------------------

  async setup(name: string, mode: OverlayMode): Promise<ServiceOverlayInfo> {
    const context = this.requireContext();
    const live = this.services.get(name);
    if (live !== undefined) {
      if (live.mode !== mode) throw new OverlayError(`service ${name} is already set up as ${live.mode}; tear it down before setting it up as ${mode}`);
      return this.info(live);
    }
    const registry = this.registry!;
    const registryKey = mode === 'shared' ? SHARED_BRIDGE_KEY : name;
    const subnet = mode === 'shared' && this.shared !== null ? this.shared.subnet : registry.assign(registryKey, context.nodeKey, this.avoidList());
    const saved: SavedService = { name, mode, subnet, nodeKey: context.nodeKey, allocated: [] };
    if (mode === 'dedicated') {
      const port = this.ports!.allocate();
      const interfaceName = this.interfaceName(name, DEDICATED_SUFFIX);
      saved.dedicated = { interfaceName, port, publicKey: '', overlayIp: this.dedicatedAddress(subnet) };
    }
    // The record goes first, so a crash in the middle leaves something the next start can rebuild or prune.
    this.doc = { ...this.doc, services: [...this.doc.services.filter((s) => s.name !== name), saved] };
    try {
      this.store.save(this.doc);
      const overlay = await this.build(saved);
      return this.info(overlay);
    } catch (error) {
      this.forget(name);
      if (mode !== 'shared' || this.shared === null) registry.release(registryKey, context.nodeKey);
      if (saved.dedicated !== undefined) this.ports!.release(saved.dedicated.port);
      throw error;
    }
  }

  /** Idempotent: also removes the deterministic bridge and device names of a service this process does not know. */
  async teardown(name: string): Promise<void> {
    const overlay = this.services.get(name);
    this.services.delete(name);
    await overlay?.dedicated?.close();
    const saved = this.doc.services.find((s) => s.name === name);
    if (this.context !== null && (overlay?.mode ?? saved?.mode) !== 'shared') {
      // By name, so a bridge or device left by an earlier process goes too (the shared bridge is never removed here).
      await removeBridge(this.interfaceName(name, BRIDGE_SUFFIX), this.log);
      await removeBridge(saved?.dedicated?.interfaceName ?? this.interfaceName(name, DEDICATED_SUFFIX), this.log);
    }
    if (saved !== undefined) {
      if (saved.mode !== 'shared') this.registry?.release(name, saved.nodeKey);
      if (saved.dedicated !== undefined) {
        this.ports?.release(saved.dedicated.port);
        this.keys.remove(saved.dedicated.interfaceName);
      }
      this.forget(name);
    }
    if (overlay !== undefined) this.log.verbose(`service overlay ${name} torn down`);
  }

  /** The service's bridge (null when the service has no overlay here). */
  bridgeOf(service: string): ServiceBridge | null {
    return this.services.get(service)?.bridge ?? null;
  }

  modeOf(service: string): OverlayMode | null {
    return this.services.get(service)?.mode ?? null;
  }

  /** The dedicated service's device, for Service-scope peer requests. */
  dedicatedDevice(service: string): DedicatedOverlay {
    const dedicated = this.services.get(service)?.dedicated;
    if (dedicated === undefined || dedicated === null) throw new OverlayError(`no dedicated overlay for service ${service}`);
    return dedicated;
  }

  /** AllocateIp for a service with a bridge here: from its pool (saved); null when it has none (the slice answers). */
  allocateIp(service: string): string | null {
    const overlay = this.services.get(service);
    if (overlay === undefined) return null;
    const ip = overlay.bridge.pool.allocate();
    overlay.allocated.add(ip);
    try {
      this.saveAllocated(overlay);
    } catch (error) {
      overlay.allocated.delete(ip);
      overlay.bridge.pool.release(ip);
      throw error;
    }
    return ip;
  }

  /** ReleaseIp: true when a service pool held the address. */
  releaseIp(ip: string): boolean {
    for (const bridge of this.bridges()) {
      if (!bridge.pool.contains(ip)) continue;
      bridge.pool.release(ip);
      for (const overlay of this.services.values()) {
        if (overlay.bridge === bridge && overlay.allocated.delete(ip)) this.saveAllocated(overlay);
      }
      return true;
    }
    return false;
  }

  /**
   * PruneOrphanBridges: delete zl-…-b / zl-…-d links that are neither in
   * `live` nor protected (the global device, the shared bridge, every live
   * dedicated device) and have no ports, releasing their subnets.
   */
  async prune(live: readonly string[]): Promise<string[]> {
    const protectedNames = new Set<string>();
    if (this.context?.globalInterface != null) protectedNames.add(this.context.globalInterface);
    if (this.shared !== null) protectedNames.add(this.shared.name);
    for (const overlay of this.services.values()) if (overlay.dedicated !== null) protectedNames.add(overlay.dedicated.interfaceName);
    const names = (await listAllLinks()).map((link) => link.name);
    const reclaimed: string[] = [];
    for (const name of selectOrphanBridges(names, new Set(live), protectedNames)) {
      if ((await bridgeMembers(name)) > 0) continue;
      const known = this.context === null ? null : serviceForInterface(name, this.context.deployment, this.context.instanceId, this.doc.services.map((s) => s.name));
      if (known !== null) {
        const overlay = this.services.get(known.service);
        if (overlay !== undefined && known.kind === 'bridge') {
          this.services.delete(known.service);
          await overlay.dedicated?.close();
        }
        const saved = this.doc.services.find((s) => s.name === known.service);
        if (saved !== undefined) {
          this.registry?.release(saved.mode === 'shared' ? SHARED_BRIDGE_KEY : saved.name, saved.nodeKey);
          if (saved.dedicated !== undefined) this.ports?.release(saved.dedicated.port);
          this.forget(saved.name);
        }
      }
      await removeBridge(name, this.log);
      reclaimed.push(name);
    }
    return reclaimed;
  }

  // ---- status ---------------------------------------------------------------------

  serviceNames(): string[] {
    return [...this.services.keys()].sort();
  }

  statusViews(members: (service: string) => number): { services: ServiceStatusView[]; dedicated: DedicatedServiceStatusView[] } {
    const services: ServiceStatusView[] = [];
    const dedicated: DedicatedServiceStatusView[] = [];
    for (const name of this.serviceNames()) {
      const overlay = this.services.get(name)!;
      services.push({ name, mode: overlay.mode, bridge: overlay.bridge.name, subnet: overlay.bridge.subnet, members: members(name) });
      const d = overlay.dedicated;
      if (d !== null) {
        dedicated.push({
          service: name,
          interface: d.interfaceName,
          publicKey: d.publicKey,
          listenPort: d.spec.port,
          overlayIp: d.spec.overlayIp,
          subnet: overlay.bridge.subnet,
          peerCount: d.peerCount,
        });
      }
    }
    return { services, dedicated };
  }

  /** Every dedicated device (metrics, the daemon's checks). */
  dedicatedDevices(): Array<{ service: string; device: Device; interfaceName: string }> {
    return [...this.services.values()].flatMap((o) => (o.dedicated === null ? [] : [{ service: o.name, device: o.dedicated.device, interfaceName: o.dedicated.interfaceName }]));
  }

  // ---- internals ------------------------------------------------------------------

  private requireContext(): NodeContext {
    if (this.registryError !== null) throw new OverlayError(this.registryError);
    if (this.context === null || this.registry === null) throw new OverlayError('service overlays need the global overlay: send SetupGlobalOverlay first');
    return this.context;
  }

  private interfaceName(service: string, suffix: string): string {
    const context = this.requireContext();
    return makeInterfaceName([context.deployment, context.instanceId, service], suffix);
  }

  /** Subnet base + DEDICATED_DEVICE_OFFSET: the dedicated device's own address. */
  private dedicatedAddress(subnet: string): string {
    const cidr = parseCidr(subnet);
    const ip = bytesToIp(bigIntToBytes(bytesToBigInt(cidr.bytes) + BigInt(DEDICATED_DEVICE_OFFSET), cidr.bytes.length));
    if (!new IpAllocator(formatCidr(cidr)).contains(ip)) throw new OverlayError(`subnet ${formatCidr(cidr)} has no room for a dedicated device address`);
    return ip;
  }

  /** CIDRs to keep service subnets away from: what other nodes own, minus anything as wide as the cluster. */
  private avoidList(): string[] {
    const context = this.requireContext();
    const cluster = parseCidr(context.clusterCidr);
    return context.routedElsewhere().filter((text) => {
      try {
        const cidr = parseCidr(text);
        return cidr.family === cluster.family && cidr.prefixLength > cluster.prefixLength;
      } catch {
        return false;
      }
    });
  }

  private async sharedBridge(subnet: string): Promise<ServiceBridge> {
    if (this.shared !== null) return this.shared;
    const bridge = this.bridgeFor(this.interfaceName(SHARED_BRIDGE_PART, SHARED_BRIDGE_SUFFIX), subnet, SHARED_BRIDGE_KEY);
    await ensureBridge(bridge, this.log);
    this.shared = bridge;
    return bridge;
  }

  private bridgeFor(name: string, subnet: string, registryKey: string): ServiceBridge {
    const cidr = parseCidr(subnet);
    const pool = new IpAllocator(formatCidr(cidr));
    return { name, subnet: formatCidr(cidr), gateway: pool.nodeIp, prefixLength: cidr.prefixLength, pool, registryKey };
  }

  /** Kernel objects for a saved record (setup and rehydrate). */
  private async build(saved: SavedService): Promise<ServiceOverlay> {
    const registry = this.registry!;
    const registryKey = saved.mode === 'shared' ? SHARED_BRIDGE_KEY : saved.name;
    if (registry.lookup(registryKey, saved.nodeKey) === undefined) registry.restore([{ service: registryKey, nodeKey: saved.nodeKey, subnet: saved.subnet }]);
    let bridge: ServiceBridge;
    let dedicated: DedicatedOverlay | null = null;
    if (saved.mode === 'shared') {
      bridge = await this.sharedBridge(saved.subnet);
    } else {
      bridge = this.bridgeFor(this.interfaceName(saved.name, BRIDGE_SUFFIX), saved.subnet, registryKey);
      if (saved.dedicated !== undefined) {
        this.ports!.reserve(saved.dedicated.port);
        bridge.pool.claim(saved.dedicated.overlayIp);
        dedicated = await DedicatedOverlay.start({
          service: saved.name,
          interfaceName: saved.dedicated.interfaceName,
          privateKey: this.keys.loadOrCreate(saved.dedicated.interfaceName),
          port: saved.dedicated.port,
          overlayIp: saved.dedicated.overlayIp,
          subnet: saved.subnet,
          log: this.log,
          ...(this.uapiDirectory === undefined ? {} : { uapiDirectory: this.uapiDirectory }),
        });
      }
      try {
        await ensureBridge(bridge, this.log);
      } catch (error) {
        await dedicated?.close();
        throw error;
      }
    }
    for (const ip of saved.allocated) {
      try {
        bridge.pool.claim(ip);
      } catch (error) {
        this.log.error(`service ${saved.name}: dropped the saved address ${ip}: ${errorMessage(error)}`);
      }
    }
    const overlay: ServiceOverlay = { name: saved.name, mode: saved.mode, bridge, dedicated, allocated: new Set(saved.allocated) };
    this.services.set(saved.name, overlay);
    if (dedicated !== null && saved.dedicated !== undefined && saved.dedicated.publicKey !== dedicated.publicKey) {
      saved.dedicated.publicKey = dedicated.publicKey;
      this.store.save(this.doc);
    }
    return overlay;
  }

  private info(overlay: ServiceOverlay): ServiceOverlayInfo {
    const d = overlay.dedicated;
    return {
      name: overlay.name,
      mode: overlay.mode,
      bridge: overlay.bridge.name,
      subnet: overlay.bridge.subnet,
      wgPublicKey: d === null ? null : d.publicKey,
      wgPort: d === null ? null : d.spec.port,
      overlayIp: d === null ? null : d.spec.overlayIp,
    };
  }

  private bridges(): ServiceBridge[] {
    const set = new Set<ServiceBridge>();
    for (const overlay of this.services.values()) set.add(overlay.bridge);
    if (this.shared !== null) set.add(this.shared);
    return [...set];
  }

  private saveAllocated(overlay: ServiceOverlay): void {
    const next: ServicesDocument = {
      ...this.doc,
      services: this.doc.services.map((s) => (s.name === overlay.name ? { ...s, allocated: [...overlay.allocated].sort() } : s)),
    };
    this.store.save(next);
    this.doc = next;
  }

  /** Drop a service's record (best-effort save: the overlay is gone either way). */
  private forget(name: string): void {
    if (!this.doc.services.some((s) => s.name === name)) return;
    this.doc = { ...this.doc, services: this.doc.services.filter((s) => s.name !== name) };
    try {
      this.store.save(this.doc);
    } catch (error) {
      this.log.error(`forgetting service ${name}: ${errorMessage(error)}`);
    }
  }
}
