/**
 * A dedicated service overlay's own WireGuard device (zl-…-d): its own key
 * (kept in a key file across restarts), its own UDP port from the band just
 * above the global port, and its own address — subnet base + 2 as a /32,
 * because base + 1 is the gateway on the service's bridge and two interfaces
 * must not claim one address.
 *
 * Peers of the service on other nodes are added to this device (Service-scope
 * AddPeer / AddAllowedIp); syncRoutes() then routes every allowed IP of
 * every peer through it, so the service's traffic between nodes rides this
 * device and not the global one (the more specific route wins over the
 * cluster route).
 */
import { formatCidr, parseCidr, type Device, type Logger } from '../../device/index.js';
import { encodeKey, publicKeyOf } from '../../noise/index.js';
import { addAddressToLinkByName, deleteRouteViaDev, replaceRouteViaDev } from '../../platform/network-config.js';
import { OVERLAY_MTU } from '../constants.js';
import { WireGuardInterface } from '../wg-interface.js';
import { errorMessage } from '../../platform/index.js';

export interface DedicatedSpec {
  service: string;
  interfaceName: string;
  privateKey: Uint8Array;
  port: number;
  overlayIp: string;
  /** The service's subnet on this node (never routed through the device: it is on the bridge). */
  subnet: string;
  log: Logger;
  uapiDirectory?: string;
}

export class DedicatedOverlay {
  readonly publicKey: string;
  /** CIDR text → installed route through the device. */
  private readonly routes = new Set<string>();

  private constructor(
    readonly spec: DedicatedSpec,
    private readonly wg: WireGuardInterface,
  ) {
    this.publicKey = encodeKey(publicKeyOf(spec.privateKey));
  }

  static async start(spec: DedicatedSpec): Promise<DedicatedOverlay> {
    const wg = await WireGuardInterface.start({
      name: spec.interfaceName,
      mtu: OVERLAY_MTU,
      privateKey: spec.privateKey,
      listenPort: spec.port,
      log: spec.log,
      ...(spec.uapiDirectory === undefined ? {} : { uapiDirectory: spec.uapiDirectory }),
    });
    try {
      const family = parseCidr(spec.subnet).family;
      await addAddressToLinkByName(spec.interfaceName, spec.overlayIp, family === 4 ? 32 : 128);
    } catch (error) {
      await wg.close();
      throw error;
    }
    return new DedicatedOverlay(spec, wg);
  }

  get device(): Device {
    return this.wg.device;
  }

  get interfaceName(): string {
    return this.spec.interfaceName;
  }

  get peerCount(): number {
    return this.wg.device.peerCount;
  }

  /** Make the kernel's routes through the device equal the peers' allowed IPs. */
  async syncRoutes(): Promise<void> {
    const wanted = new Set<string>();
    const own = formatCidr(parseCidr(this.spec.subnet));
    for (const peer of this.wg.device.get().peers) {
      for (const cidr of peer.allowedIps) {
        const text = formatCidr(cidr);
        if (text !== own) wanted.add(text);
      }
    }
    for (const text of [...this.routes]) {
      if (wanted.has(text)) continue;
      const [dest, prefix] = text.split('/') as [string, string];
      await deleteRouteViaDev(dest, Number(prefix), this.interfaceName).catch((error: unknown) =>
        this.spec.log.error(`removing route ${text} dev ${this.interfaceName}: ${errorMessage(error)}`),
      );
      this.routes.delete(text);
    }
    for (const text of wanted) {
      if (this.routes.has(text)) continue;
      const [dest, prefix] = text.split('/') as [string, string];
      await replaceRouteViaDev(dest, Number(prefix), this.interfaceName);
      this.routes.add(text);
    }
  }

  /** The device and its routes (the routes go with the link). */
  async close(): Promise<void> {
    this.routes.clear();
    await this.wg.close();
  }
}
