/** Binding a node:dgram socket as a promise: the one way NAT traversal's own sockets come to life. */
import dgram from 'node:dgram';

export interface UdpBindOptions {
  type: 'udp4' | 'udp6';
  /** 0 (the default) picks a free port. */
  port?: number;
  address?: string;
  ipv6Only?: boolean;
}

/** A bound socket; on failure the socket is closed and the bind error rejects. */
export function bindUdp(options: UdpBindOptions): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: options.type, ipv6Only: options.ipv6Only ?? false });
    const failed = (error: Error) => {
      socket.close();
      reject(error);
    };
    socket.once('error', failed);
    socket.bind(options.port ?? 0, options.address, () => {
      socket.off('error', failed);
      resolve(socket);
    });
  });
}
