/**
 * One in-process WireGuard interface: a Linux TUN, a Device over it and its
 * UAPI socket (so `wg show <name>` works), keyed and listening, with its MTU
 * set. The node's dedicated per-service devices are built with it.
 *
 * start() removes a link of the same name first (a crashed earlier run may
 * have left one) and undoes everything it did when any step fails; close()
 * is idempotent and leaves no link behind.
 */
import { join } from 'node:path';
import { Device, type Logger, UapiServer, uapiSocketPath } from '../device/index.js';
import { deleteLinkByName, setLinkMtuByName, setLinkUpByName } from '../platform/network-config.js';
import { LinuxTun } from '../tun/index.js';
import { OverlayError } from './errors.js';
import { errorMessage } from '../platform/index.js';

export interface WireGuardInterfaceOptions {
  name: string;
  mtu: number;
  privateKey: Uint8Array;
  listenPort: number;
  log: Logger;
  /** Where the UAPI socket goes; default /var/run/wireguard (where wg(8) looks). */
  uapiDirectory?: string;
}

export class WireGuardInterface {
  private closed = false;

  private constructor(
    readonly name: string,
    readonly device: Device,
    private readonly uapi: UapiServer,
  ) {}

  static async start(options: WireGuardInterfaceOptions): Promise<WireGuardInterface> {
    const { name, log } = options;
    await deleteLinkByName(name).catch((error: unknown) => log.verbose(`removing a stale ${name} failed (continuing): ${errorMessage(error)}`));
    const tun = LinuxTun.create(name, options.mtu);
    const device = new Device({ tun, log });
    let uapi: UapiServer | null = null;
    try {
      const socketPath = options.uapiDirectory === undefined ? uapiSocketPath(name) : join(options.uapiDirectory, `${name}.sock`);
      uapi = await UapiServer.listen(socketPath, device, (message) => log.error(message));
      await device.start();
      await device.set({ privateKey: options.privateKey, listenPort: options.listenPort, replacePeers: false, peers: [] });
      await setLinkMtuByName(name, options.mtu);
      await setLinkUpByName(name);
    } catch (error) {
      await uapi?.close().catch(() => undefined);
      await device.close();
      await deleteLinkByName(name).catch(() => undefined);
      throw new OverlayError(`cannot start WireGuard interface ${name} on UDP port ${options.listenPort}: ${errorMessage(error)}`);
    }
    return new WireGuardInterface(name, device, uapi);
  }

  /** Socket, device and link, each best-effort. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.uapi.close().catch(() => undefined);
    await this.device.close();
    await deleteLinkByName(this.name).catch(() => undefined);
  }
}
