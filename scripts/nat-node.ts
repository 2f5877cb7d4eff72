/**
 * A NAT-traversing tswg node for tests and experiments, run inside a network
 * namespace: it creates a TUN interface and a Device with a fresh private
 * key, and a NatMaintenance around it, then obeys JSON-line commands on a
 * Unix control socket (a filesystem socket reaches across network
 * namespaces; the netns helpers give processes no stdin).
 *
 *   node dist/scripts/nat-node.js --control /tmp/x/node.sock [--interface wg0]
 *
 * On stdout it prints one line {"ready":true,"publicKey":…,"listenPort":…}
 * once the control socket listens. Requests are {"id":1,"cmd":…,…}; answers
 * {"id":1,"ok":true,"result":…} or {"id":1,"ok":false,"error":"…"}. Commands:
 *   info                                  → {publicKey, listenPort}
 *   configure {nat: NatConfigSpec, relayCredential?}  (the credential of a relay client)
 *   addPeer {publicKey, allowedIps: ["10.99.0.2/32"], endpoint?, keepalive?}
 *   removePeer {publicKey}
 *   setPeerCandidates {publicKey, candidates: [{candidateType, address, priority}]}
 *   tick                                  → resolves when the maintenance tick did
 *   status                                → NatStatusWire
 *   peer {publicKey}                      → {endpoint, lastHandshakeTimeMs, rxBytes, txBytes} | null
 *   relayServer                           → the relay server's address, or null
 * LOG_LEVEL=verbose logs to stderr. SIGTERM/SIGINT stop it.
 */
import { createServer, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { parseCidr, parseEndpoint, formatEndpoint } from '../src/device/addr.js';
import { Device } from '../src/device/device.js';
import { createLogger, parseLogLevel } from '../src/device/logger.js';
import type { UapiPeerChange } from '../src/device/uapi.js';
import { decodeKey, encodeKey, generatePrivateKey, publicKeyOf } from '../src/noise/index.js';
import { natConfigFromSpec } from '../src/nat/config.js';
import { NatMaintenance } from '../src/nat/maintenance.js';
import { LinuxTun } from '../src/tun/linux.js';

interface Request {
  id?: unknown;
  cmd?: unknown;
  [field: string]: unknown;
}

function argument(name: string, fallback?: string): string {
  const at = process.argv.indexOf(name);
  const value = at >= 0 ? process.argv[at + 1] : fallback;
  if (value === undefined) throw new Error(`nat-node: missing ${name} <value>`);
  return value;
}

function text(request: Request, field: string): string {
  const value = request[field];
  if (typeof value !== 'string') throw new Error(`'${field}' must be a string`);
  return value;
}

async function main(): Promise<void> {
  const controlPath = argument('--control');
  const interfaceName = argument('--interface', 'wg0');
  const log = createLogger(parseLogLevel(process.env.LOG_LEVEL), interfaceName);
  const device = new Device({ tun: LinuxTun.create(interfaceName), log });
  await device.start();
  const privateKey = generatePrivateKey();
  await device.set({ privateKey, replacePeers: false, peers: [] });
  const publicKey = encodeKey(publicKeyOf(privateKey));
  const maintenance = new NatMaintenance(device, null, { log });

  const handle = async (request: Request): Promise<unknown> => {
    switch (request.cmd) {
      case 'info':
        return { publicKey, listenPort: device.listenPort };
      case 'configure': {
        const config = natConfigFromSpec(request.nat);
        if (typeof request.relayCredential === 'string') config.clusterRelayCredential = request.relayCredential;
        maintenance.setConfig(config);
        return null;
      }
      case 'addPeer': {
        const allowed = request.allowedIps;
        if (!Array.isArray(allowed) || allowed.some((cidr) => typeof cidr !== 'string')) throw new Error("'allowedIps' must be an array of CIDR strings");
        const change: UapiPeerChange = {
          publicKey: decodeKey(text(request, 'publicKey'), 'publicKey'),
          remove: false,
          updateOnly: false,
          replaceAllowedIps: true,
          allowedIps: (allowed as string[]).map((cidr) => parseCidr(cidr)),
        };
        if (typeof request.endpoint === 'string') change.endpoint = parseEndpoint(request.endpoint);
        if (typeof request.keepalive === 'number') change.persistentKeepaliveInterval = request.keepalive;
        await device.set({ replacePeers: false, peers: [change] });
        return null;
      }
      case 'removePeer': {
        const key = decodeKey(text(request, 'publicKey'), 'publicKey');
        await device.set({ replacePeers: false, peers: [{ publicKey: key, remove: true, updateOnly: false, replaceAllowedIps: false, allowedIps: [] }] });
        maintenance.removePeer(key);
        return null;
      }
      case 'setPeerCandidates': {
        if (!Array.isArray(request.candidates)) throw new Error("'candidates' must be an array");
        maintenance.setPeerCandidates(text(request, 'publicKey'), request.candidates);
        return null;
      }
      case 'tick':
        await maintenance.tick();
        return null;
      case 'status':
        return maintenance.status();
      case 'peer': {
        const status = device.peerStatus(decodeKey(text(request, 'publicKey'), 'publicKey'));
        return status === null ? null : { ...status, endpoint: status.endpoint === null ? null : formatEndpoint(status.endpoint) };
      }
      case 'relayServer':
        return maintenance.relayServer?.endpoint ?? null;
      default:
        throw new Error(`unknown command ${JSON.stringify(request.cmd)}`);
    }
  };

  const serve = (socket: Socket): void => {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (let newline = buffered.indexOf('\n'); newline >= 0; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line === '') continue;
        let request: Request;
        try {
          request = JSON.parse(line) as Request;
        } catch {
          socket.write(`${JSON.stringify({ id: null, ok: false, error: 'not JSON' })}\n`);
          continue;
        }
        handle(request).then(
          (result) => socket.write(`${JSON.stringify({ id: request.id ?? null, ok: true, result })}\n`),
          (error: Error) => socket.write(`${JSON.stringify({ id: request.id ?? null, ok: false, error: error.message })}\n`),
        );
      }
    });
  };

  rmSync(controlPath, { force: true });
  const server = createServer(serve);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(controlPath, resolve);
  });
  process.stdout.write(`${JSON.stringify({ ready: true, publicKey, listenPort: device.listenPort })}\n`);

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    server.close();
    void Promise.allSettled([maintenance.close(), device.close()]).then(() => {
      rmSync(controlPath, { force: true });
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  device.onClose(stop);
}

main().catch((error: Error) => {
  process.stderr.write(`nat-node: ${error.message}\n`);
  process.exit(1);
});
