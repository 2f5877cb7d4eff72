/**
 * How relayed traffic reaches a WireGuard device that knows nothing of
 * relays: the device's endpoint for a remote peer is a loopback UDP socket of
 * ours (127.0.0.1:P, one per remote). What the device sends to P is handed to
 * `forward` (which wraps it for the relay or TURN server); what the relay
 * delivers for that remote is sent from P to the device's port, so WireGuard
 * sees the peer at 127.0.0.1:P and keeps answering there.
 */
import type dgram from 'node:dgram';
import { bindUdp } from './udp.js';
import type { AddressInfo } from 'node:net';
import { type Endpoint, silentLogger, type Logger } from '../device/index.js';
import { errorMessage } from '../platform/index.js';

const LOOPBACK = '127.0.0.1';

export class PeerProxy {
  private closed = false;

  private constructor(
    private readonly socket: dgram.Socket,
    private readonly devicePort: number,
    /** The endpoint to give the device as the remote peer's endpoint. */
    readonly endpoint: Endpoint,
  ) {}

  /**
   * Bind 127.0.0.1:0. Only datagrams from the device (127.0.0.1:devicePort)
   * are forwarded; anything else on loopback is dropped.
   */
  static async open(devicePort: number, forward: (datagram: Uint8Array) => void, log: Logger = silentLogger): Promise<PeerProxy> {
    if (!Number.isInteger(devicePort) || devicePort < 1 || devicePort > 65535) throw new RangeError(`device port ${devicePort} is not a UDP port`);
    const socket = await bindUdp({ type: 'udp4', address: LOOPBACK });
    const port = (socket.address() as AddressInfo).port;
    const proxy = new PeerProxy(socket, devicePort, { family: 4, address: LOOPBACK, port });
    socket.on('error', (error) => log.error(`peer proxy ${LOOPBACK}:${port}: ${error.message}`));
    socket.on('message', (message, from) => {
      if (from.address !== LOOPBACK || from.port !== devicePort) return; // not our device
      try {
        forward(new Uint8Array(message.buffer, message.byteOffset, message.byteLength));
      } catch (error) {
        log.error(`peer proxy ${LOOPBACK}:${port}: forwarding failed: ${errorMessage(error)}`);
      }
    });
    return proxy;
  }

  /** Hand a datagram from the remote peer to the device. */
  deliver(datagram: Uint8Array): void {
    if (this.closed) return;
    this.socket.send(datagram, this.devicePort, LOOPBACK, () => undefined); // a lost datagram is UDP as usual
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
  }
}
