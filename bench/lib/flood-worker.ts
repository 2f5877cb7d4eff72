/**
 * The flooder of bench:flood, on its own thread so it does not share the
 * device's event loop: sends the given handshake initiations round robin
 * from many loopback source addresses at a fixed rate, and never reads what
 * comes back (as a spoofing flooder never sees its cookie replies).
 */
import dgram from 'node:dgram';
import { parentPort, workerData } from 'node:worker_threads';

interface FloodOptions {
  initiations: Uint8Array[];
  port: number;
  rate: number;
  sources: number;
  tickMs: number;
}

const { initiations, port, rate, sources, tickMs } = workerData as FloodOptions;

async function bound(address: string): Promise<dgram.Socket> {
  const socket = dgram.createSocket({ type: 'udp4', sendBufferSize: 4 << 20 });
  socket.on('error', () => undefined);
  await new Promise<void>((resolve) => socket.bind(0, address, resolve));
  return socket;
}

const sockets = await Promise.all(Array.from({ length: sources }, (_, i) => bound(`127.0.0.${2 + i}`)));
let sent = 0;
let next = 0;
const start = performance.now();
const timer = setInterval(() => {
  // Catch up to the rate by the clock, so a late tick does not lower it.
  const due = Math.floor(((performance.now() - start) / 1000) * rate);
  for (; sent < due; sent++) sockets[sent % sources]!.send(initiations[next++ % initiations.length]!, port, '127.0.0.1');
}, tickMs);

parentPort!.on('message', () => {
  clearInterval(timer);
  parentPort!.postMessage({ sent, seconds: (performance.now() - start) / 1000 });
  for (const socket of sockets) socket.close();
});
