/**
 * Containers on this node's overlays: AttachContainer / DetachContainer.
 *
 *   linuxPid      a process in its own network namespace: eth0 on the
 *                 service's bridge (a veth), and with joinGlobal eth1 with an
 *                 address of the node slice, routed to it by a host route
 *   guestManaged  a VM running its own WireGuard: a key pair and an address
 *                 for it, the VM registered as a roaming peer of the node's
 *                 device (the dedicated one for a dedicated service), and the
 *                 configuration it needs in the answer
 *   hostShared    a container sharing the host's stack: a /32 (/128) alias
 *                 of the node slice on the global device
 *
 * Order of an attach: the namespace is pinned first (an exited PID fails
 * here, naming it), orphans are swept, addresses drawn, the record saved in
 * state "attaching", then the kernel is changed; the record turns
 * "attached" at the end. Any failure undoes every earlier step and releases
 * the addresses. Detach is idempotent and removes the links by name even
 * without a record. When the last member of an ephemeral service leaves,
 * the service overlay is torn down.
 *
 * dnsServer / dnsDomain and isolationNetwork are recorded with the
 * attachment for the DNS and firewall modules to act on.
 */
import { parseCidr, type Device, type Logger } from '../../device/index.js';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyOf } from '../../noise/index.js';
import { addAddressToLinkByName, addLinkToBridge, deleteAddressFromLinkByName, linkExists, replaceRouteViaDev } from '../../platform/network-config.js';
import {
  DEFAULT_PERSISTENT_KEEPALIVE_SECS,
  GLOBAL_CONTAINER_IFNAME,
  GLOBAL_VETH_TAG,
  OVERLAY_MTU,
  SERVICE_CONTAINER_IFNAME,
  SERVICE_VETH_TAG,
} from '../constants.js';
import { OverlayError } from '../errors.js';
import { peerChange } from '../peer-spec.js';
import type { AttachContainerRequest, AttachHandle, AttachResult, GuestOverlayConfig } from '../protocol.js';
import type { ServiceOverlays } from '../services/service-overlays.js';
import { AttachmentStore, handleKey, type AttachmentRecord } from './attachment-store.js';
import { ForwardingLedger } from './forwarding.js';
import { NetnsHandle } from './netns-handle.js';
import { sweepOrphanVeths, processAlive } from './sweep.js';
import { hostVethName, plugVeth, removeVeth } from './veth.js';
import { errorMessage } from '../../platform/index.js';

/** What attach needs of the global overlay. */
export interface GlobalView {
  interfaceName: string;
  nodeIp: string;
  clusterCidr: string;
  slicePrefixLength: number;
  wgPort: number;
  publicKey: string;
  device: Device | null;
}

export interface AttachmentsOptions {
  dataDir: string;
  log: Logger;
  services: ServiceOverlays;
  global(): GlobalView | null;
  allocateSliceIp(label: string): string;
  releaseSliceIp(ip: string): void;
  /** The last member of an ephemeral service left. */
  teardownService(service: string): Promise<void>;
}

export type AttachAnswer = ({ type: 'Attached' } & AttachResult) | ({ type: 'GuestConfig' } & GuestOverlayConfig);


const hostPrefix = (ip: string): number => (ip.includes(':') ? 128 : 32);

export class ContainerAttachments {
  private readonly log: Logger;
  private readonly store: AttachmentStore;
  private readonly records = new Map<string, AttachmentRecord>();
  private readonly forwarding: ForwardingLedger;

  constructor(private readonly options: AttachmentsOptions) {
    this.log = options.log;
    this.store = new AttachmentStore(options.dataDir);
    for (const record of this.store.load()) this.records.set(record.key, record);
    this.forwarding = new ForwardingLedger(options.log);
  }

  /** Attached members of a service on this node. */
  members(service: string): number {
    let count = 0;
    for (const record of this.records.values()) if (record.service === service && record.state === 'attached') count++;
    return count;
  }

  list(): AttachmentRecord[] {
    return [...this.records.values()];
  }

  async attach(request: AttachContainerRequest): Promise<AttachAnswer> {
    const key = handleKey(request.handle);
    const existing = this.records.get(key);
    if (existing !== undefined) {
      if (existing.state === 'attached' && existing.service === request.service && 'linuxPid' in request.handle) {
        return { type: 'Attached', ip: existing.ip, globalIp: existing.globalIp };
      }
      throw new OverlayError(`${key} is already attached to service ${existing.service}; detach it first`);
    }
    if ('linuxPid' in request.handle) return this.attachProcess(request, request.handle.linuxPid);
    if ('guestManaged' in request.handle) return this.attachGuest(request, request.handle.guestManaged);
    return this.attachHostShared(request, request.handle.hostShared);
  }

  async detach(handle: AttachHandle): Promise<void> {
    const key = handleKey(handle);
    const record = this.records.get(key);
    if ('linuxPid' in handle) {
      // By name, with or without a record: a crash may have left the links and lost nothing else.
      await removeVeth(handle.linuxPid, SERVICE_VETH_TAG);
      await removeVeth(handle.linuxPid, GLOBAL_VETH_TAG);
      this.forwarding.forget(hostVethName(handle.linuxPid, SERVICE_VETH_TAG));
    }
    if (record === undefined) return;
    await this.undoRecord(record);
    this.records.delete(key);
    this.save();
    if (record.ephemeral && this.members(record.service) === 0 && this.options.services.bridgeOf(record.service) !== null) {
      this.log.verbose(`the last ephemeral member of ${record.service} left; tearing its overlay down`);
      await this.options.teardownService(record.service);
    }
  }

  /** Detach every member of a service (its overlay is going away). */
  async detachService(service: string): Promise<void> {
    for (const record of [...this.records.values()]) {
      if (record.service === service) await this.detach(record.handle);
    }
  }

  /** Global teardown or shutdown: every container detached, forwarding put back. */
  async close(): Promise<void> {
    for (const record of [...this.records.values()]) {
      await this.detach(record.handle).catch((error: unknown) => this.log.error(`detaching ${record.key}: ${errorMessage(error)}`));
    }
    await this.forwarding.revert();
  }

  /** Remove veths of processes that are gone (the daemon's start-up; attach and recover sweep too). */
  async sweep(): Promise<void> {
    const swept = await sweepOrphanVeths();
    if (swept.length > 0) this.log.verbose(`removed orphan veths: ${swept.join(', ')}`);
  }

  /**
   * After a restart (the service overlays are rebuilt): adopt what is still
   * whole, undo the rest. A process that is gone, a record still
   * "attaching", or a service without an overlay → links removed, addresses
   * released; a live, attached process → its addresses claimed again and
   * its host veth put back on the bridge.
   */
  async recover(): Promise<void> {
    const swept = await sweepOrphanVeths();
    if (swept.length > 0) this.log.verbose(`removed orphan veths: ${swept.join(', ')}`);
    for (const record of [...this.records.values()]) {
      try {
        if (!(await this.adopt(record))) {
          this.log.verbose(`attachment ${record.key} (${record.service}) is stale; removing it`);
          if ('linuxPid' in record.handle) {
            await removeVeth(record.handle.linuxPid, SERVICE_VETH_TAG);
            await removeVeth(record.handle.linuxPid, GLOBAL_VETH_TAG);
          }
          this.releaseAddresses(record, false);
          this.records.delete(record.key);
        }
      } catch (error) {
        this.log.error(`recovering attachment ${record.key}: ${errorMessage(error)}`);
      }
    }
    this.save();
  }

  // ---- linuxPid ---------------------------------------------------------------------

  private async attachProcess(request: AttachContainerRequest, pid: number): Promise<AttachAnswer> {
    const bridge = this.requireBridge(request.service);
    const netns = NetnsHandle.openPid(pid);
    try {
      await sweepOrphanVeths().catch((error: unknown) => this.log.error(`sweeping orphan veths: ${errorMessage(error)}`));
      const global = this.options.global();
      const record = this.newRecord(request, bridge.pool.allocate(), 'service');
      try {
        if (request.joinGlobal && global !== null && global.device !== null) record.globalIp = this.options.allocateSliceIp(record.key);
        this.commit(record);
      } catch (error) {
        this.releaseAddresses(record, false);
        throw error;
      }
      try {
        await plugVeth({
          pid,
          nsFd: netns.fd,
          tag: SERVICE_VETH_TAG,
          containerIfname: SERVICE_CONTAINER_IFNAME,
          ip: record.ip,
          prefixLength: bridge.prefixLength,
          mtu: OVERLAY_MTU,
          bridge: { name: bridge.name, gateway: bridge.gateway },
          nodeIp: global?.nodeIp ?? bridge.gateway,
        });
        if (record.globalIp !== null && global !== null) {
          await plugVeth({
            pid,
            nsFd: netns.fd,
            tag: GLOBAL_VETH_TAG,
            containerIfname: GLOBAL_CONTAINER_IFNAME,
            ip: record.globalIp,
            prefixLength: global.slicePrefixLength,
            mtu: OVERLAY_MTU,
            bridge: null,
            nodeIp: global.nodeIp,
          });
        }
        const family = parseCidr(bridge.subnet).family;
        const interfaces = [bridge.name, hostVethName(pid, SERVICE_VETH_TAG)];
        if (record.globalIp !== null) interfaces.push(hostVethName(pid, GLOBAL_VETH_TAG));
        await this.forwarding.enable(family, interfaces);
        record.state = 'attached';
        this.commit(record);
      } catch (error) {
        await removeVeth(pid, SERVICE_VETH_TAG).catch(() => undefined);
        await removeVeth(pid, GLOBAL_VETH_TAG).catch(() => undefined);
        this.releaseAddresses(record, true);
        this.records.delete(record.key);
        this.saveQuietly();
        throw error;
      }
      this.log.verbose(`process ${pid} attached to ${request.service}: eth0 ${record.ip}${record.globalIp === null ? '' : `, eth1 ${record.globalIp}`}`);
      return { type: 'Attached', ip: record.ip, globalIp: record.globalIp };
    } finally {
      netns.close();
    }
  }

  // ---- guestManaged -----------------------------------------------------------------

  private async attachGuest(request: AttachContainerRequest, id: string): Promise<AttachAnswer> {
    const global = this.options.global();
    if (global === null || global.device === null) throw new OverlayError('guest-managed attach requires the global overlay to be set up first (SetupGlobalOverlay)');
    const services = this.options.services;
    const dedicated = services.modeOf(request.service) === 'dedicated' ? services.dedicatedDevice(request.service) : null;
    // A dedicated service's guest lives in the service subnet behind the dedicated device; any other guest on the node slice.
    const bridge = dedicated === null ? null : services.bridgeOf(request.service)!;
    const ip = bridge === null ? this.options.allocateSliceIp(`guest:${id}`) : bridge.pool.allocate();
    const record = this.newRecord(request, ip, bridge === null ? 'slice' : 'service');
    const privateKey = generatePrivateKey();
    const publicKey = publicKeyOf(privateKey);
    record.guestPublicKey = encodeKey(publicKey);
    record.guestScope = dedicated === null ? 'global' : request.service;
    try {
      this.commit(record);
      const device = dedicated === null ? global.device : dedicated.device;
      await device.set({ replacePeers: false, peers: [peerChange(publicKey, { replaceAllowedIps: true, allowedIps: [parseCidr(`${ip}/${hostPrefix(ip)}`)] })] });
      await dedicated?.syncRoutes();
      record.state = 'attached';
      this.commit(record);
    } catch (error) {
      await this.removeGuestPeer(record).catch(() => undefined);
      this.releaseAddresses(record, true);
      this.records.delete(record.key);
      this.saveQuietly();
      throw error;
    }
    const nodePeer = {
      publicKey: dedicated === null ? global.publicKey : dedicated.publicKey,
      // The VM runtime rewrites this to the address at which it reaches the node.
      endpoint: `${global.nodeIp.includes(':') ? `[${global.nodeIp}]` : global.nodeIp}:${dedicated === null ? global.wgPort : dedicated.spec.port}`,
      allowedIps: dedicated === null ? global.clusterCidr : bridge!.subnet,
      persistentKeepaliveSecs: DEFAULT_PERSISTENT_KEEPALIVE_SECS,
      candidates: [],
    };
    return {
      type: 'GuestConfig',
      overlayIp: ip,
      prefixLen: bridge === null ? global.slicePrefixLength : bridge.prefixLength,
      privateKey: encodeKey(privateKey),
      publicKey: record.guestPublicKey,
      listenPort: dedicated === null ? global.wgPort : dedicated.spec.port,
      // Only this node: the guest reaches every other node through it (its routes cover the cluster).
      peers: [nodePeer],
      dnsServer: request.dnsServer,
      dnsDomain: request.dnsDomain,
    };
  }

  private async removeGuestPeer(record: AttachmentRecord): Promise<void> {
    if (record.guestPublicKey === undefined) return;
    const key = decodeKey(record.guestPublicKey, 'public key');
    const device = this.guestDevice(record);
    if (device === null) return;
    await device.device.set({ replacePeers: false, peers: [peerChange(key, { remove: true })] });
    await device.sync?.();
  }

  private guestDevice(record: AttachmentRecord): { device: Device; sync?: () => Promise<void> } | null {
    if (record.guestScope === undefined || record.guestScope === 'global') {
      const device = this.options.global()?.device ?? null;
      return device === null ? null : { device };
    }
    try {
      const dedicated = this.options.services.dedicatedDevice(record.guestScope);
      return { device: dedicated.device, sync: () => dedicated.syncRoutes() };
    } catch {
      return null;
    }
  }

  // ---- hostShared -------------------------------------------------------------------

  private async attachHostShared(request: AttachContainerRequest, id: string): Promise<AttachAnswer> {
    const global = this.options.global();
    if (global === null || global.device === null) throw new OverlayError('host-shared attach requires the global overlay to be set up first (SetupGlobalOverlay)');
    const record = this.newRecord(request, this.options.allocateSliceIp(`host:${id}`), 'slice');
    try {
      this.commit(record);
      await addAddressToLinkByName(global.interfaceName, record.ip, hostPrefix(record.ip));
      record.state = 'attached';
      this.commit(record);
    } catch (error) {
      await deleteAddressFromLinkByName(global.interfaceName, record.ip, hostPrefix(record.ip)).catch(() => undefined);
      this.releaseAddresses(record, false);
      this.records.delete(record.key);
      this.saveQuietly();
      throw new OverlayError(`host-shared attach of ${id}: ${errorMessage(error)}`);
    }
    return { type: 'Attached', ip: record.ip, globalIp: null };
  }

  // ---- shared steps -----------------------------------------------------------------

  private requireBridge(service: string): NonNullable<ReturnType<ServiceOverlays['bridgeOf']>> {
    const bridge = this.options.services.bridgeOf(service);
    if (bridge === null) throw new OverlayError(`no service overlay for service ${service} on this node; send SetupServiceOverlay first`);
    return bridge;
  }

  private newRecord(request: AttachContainerRequest, ip: string, ipPool: 'service' | 'slice'): AttachmentRecord {
    return {
      key: handleKey(request.handle),
      handle: request.handle,
      service: request.service,
      ip,
      ipPool,
      globalIp: null,
      ephemeral: request.ephemeral,
      isolationNetwork: request.isolationNetwork,
      dnsServer: request.dnsServer,
      dnsDomain: request.dnsDomain,
      state: 'attaching',
    };
  }

  /** Kernel side of a record's undo (links are the caller's), then its addresses. */
  private async undoRecord(record: AttachmentRecord): Promise<void> {
    if ('guestManaged' in record.handle) await this.removeGuestPeer(record).catch((error: unknown) => this.log.error(`removing guest peer ${record.key}: ${errorMessage(error)}`));
    if ('hostShared' in record.handle) {
      const global = this.options.global();
      if (global !== null) await deleteAddressFromLinkByName(global.interfaceName, record.ip, hostPrefix(record.ip)).catch(() => undefined);
    }
    this.releaseAddresses(record, true);
  }

  /** Give the record's addresses back; `servicePoolLive`: the service pool holds the claim (false before recovery claimed it). */
  private releaseAddresses(record: AttachmentRecord, servicePoolLive: boolean): void {
    if (record.ipPool === 'slice') this.options.releaseSliceIp(record.ip);
    else if (servicePoolLive) this.options.services.bridgeOf(record.service)?.pool.release(record.ip);
    if (record.globalIp !== null) this.options.releaseSliceIp(record.globalIp);
  }

  private async adopt(record: AttachmentRecord): Promise<boolean> {
    if (record.state !== 'attached') return false;
    const global = this.options.global();
    const bridge = this.options.services.bridgeOf(record.service);
    if ('linuxPid' in record.handle) {
      const pid = record.handle.linuxPid;
      const host = hostVethName(pid, SERVICE_VETH_TAG);
      if (bridge === null || !processAlive(pid) || !(await linkExists(host))) return false;
      bridge.pool.claim(record.ip);
      await addLinkToBridge(host, bridge.name);
      if (record.globalIp !== null && global !== null) {
        await replaceRouteViaDev(record.globalIp, hostPrefix(record.globalIp), hostVethName(pid, GLOBAL_VETH_TAG), global.nodeIp).catch((error: unknown) =>
          this.log.error(`restoring the route to ${record.globalIp}: ${errorMessage(error)}`),
        );
      }
      await this.forwarding.enable(parseCidr(bridge.subnet).family, [bridge.name, host]);
      return true;
    }
    if (global === null || global.device === null) return false;
    if ('hostShared' in record.handle) {
      await addAddressToLinkByName(global.interfaceName, record.ip, hostPrefix(record.ip)).catch(() => undefined);
      return true;
    }
    if (record.ipPool === 'service') {
      if (bridge === null) return false;
      bridge.pool.claim(record.ip);
    }
    const device = this.guestDevice(record);
    if (device === null || record.guestPublicKey === undefined) return false;
    await device.device.set({
      replacePeers: false,
      peers: [peerChange(decodeKey(record.guestPublicKey, 'public key'), { replaceAllowedIps: true, allowedIps: [parseCidr(`${record.ip}/${hostPrefix(record.ip)}`)] })],
    });
    await device.sync?.();
    return true;
  }

  /** Save with this record in place; throws (the caller undoes) when the disk refuses. */
  private commit(record: AttachmentRecord): void {
    const before = this.records.get(record.key);
    this.records.set(record.key, record);
    try {
      this.save();
    } catch (error) {
      if (before === undefined) this.records.delete(record.key);
      else this.records.set(record.key, before);
      throw error;
    }
  }

  private save(): void {
    this.store.save(this.records.values());
  }

  private saveQuietly(): void {
    try {
      this.save();
    } catch (error) {
      this.log.error(`saving attachments: ${errorMessage(error)}`);
    }
  }
}
