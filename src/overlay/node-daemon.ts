/**
 * `tswg node --data-dir DIR [--config FILE] [--control SOCKET] [--metrics HOST:PORT]`:
 * the long-running overlay node. It wires the engine to the control socket,
 * applies the embedded config (SetupGlobalOverlay + AddPeer per peer, so a
 * small mesh needs no orchestrator), serves Prometheus metrics, drives the
 * NAT tick itself when the config enables NAT, and on SIGINT/SIGTERM or a
 * Shutdown request reverts everything, removes the socket and exits 0.
 *
 * Order at start: the control socket first (it refuses to start when another
 * node answers there, before anything on the host is touched), then the
 * config, then metrics; "ready" is logged (and written to stdout) last.
 */
import http from 'node:http';
import type { Logger } from '../device/logger.js';
import { addPeerRequestsFromConfig, loadNodeConfig, setupRequestFromConfig, type NodeConfig } from './config-file.js';
import { ControlServer } from './control-server.js';
import { OverlayEngine } from './engine.js';
import { OverlayError } from './errors.js';
import { METRICS_CONTENT_TYPE } from './metrics.js';
import type { Request, Response } from './protocol.js';

/** Seconds between NAT ticks when the config has NAT enabled but no refresh interval (the NAT default). */
const DEFAULT_NAT_TICK_SECS = 30;
/** The first NAT tick runs this soon after start-up (candidates early, peers connected early). */
const FIRST_NAT_TICK_MS = 500;
const METRICS_PATH = '/metrics';

export interface NodeDaemonOptions {
  dataDir: string;
  configPath?: string;
  controlPath: string;
  metrics?: { host: string; port: number };
  log: Logger;
  /** Where the global device's UAPI socket goes (tests); default /var/run/wireguard. */
  uapiDirectory?: string;
  /** false (--no-firewall): the node adds no firewall rules. */
  firewall?: boolean;
  /** Called once everything is up (the CLI prints "ready"). */
  onReady?: (info: { controlPath: string; metricsAddress: string | null; bridgeName: string | null }) => void;
}

/** "HOST:PORT" or "[v6]:PORT" or ":PORT" (all addresses). */
export function parseListenAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text);
  const port = match === null ? NaN : Number(match[3]);
  if (match === null || port > 65535) throw new OverlayError(`invalid --metrics address ${JSON.stringify(text)}: expected HOST:PORT`);
  return { host: match[1] ?? (match[2] === '' ? '0.0.0.0' : match[2]!), port };
}

function unwrap(response: Response, what: string): Response {
  if (response.type === 'Err') throw new OverlayError(`${what}: ${response.message}`);
  return response;
}

/** The requests an embedded config stands for, in order. */
export function configRequests(config: NodeConfig, defaultInstanceId: string): Request[] {
  return [setupRequestFromConfig(config, defaultInstanceId), ...addPeerRequestsFromConfig(config)];
}

/** Run the node until a signal or Shutdown; resolves with the exit code. */
export async function runNodeDaemon(options: NodeDaemonOptions): Promise<number> {
  const log = options.log;
  let stop: ((reason: string) => void) | null = null;
  let signalledEarly: string | null = null;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stop !== null) stop(signal);
    else signalledEarly ??= signal;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // Read the config before touching anything, so a bad file changes nothing.
  const config = options.configPath === undefined ? null : loadNodeConfig(options.configPath);
  const engine = new OverlayEngine({ dataDir: options.dataDir, log, ...(options.uapiDirectory === undefined ? {} : { uapiDirectory: options.uapiDirectory }), ...(options.firewall === undefined ? {} : { firewall: options.firewall }) });

  let shutdownAfterAnswer: (() => void) | null = null;
  const handler = async (request: Request): Promise<Response> => {
    const response = await engine.handle(request);
    if (engine.shutdownRequested) queueMicrotask(() => shutdownAfterAnswer?.());
    return response;
  };
  const server = await ControlServer.listen(options.controlPath, handler, (message) => log.error(message));
  let metricsServer: http.Server | null = null;
  let natTimer: NodeJS.Timeout | null = null;

  const teardown = async (): Promise<void> => {
    if (natTimer !== null) clearInterval(natTimer);
    natTimer = null;
    if (metricsServer !== null) await new Promise<void>((resolve) => metricsServer!.close(() => resolve()));
    // Shutdown first (through the queue, after what is already queued), then the socket goes.
    await server.submit({ type: 'Shutdown' });
    await server.close();
    await engine.close();
  };

  let bridgeName: string | null = null;
  try {
    if (config !== null) {
      engine.setConfigPeers(addPeerRequestsFromConfig(config).map((request) => request.peer.publicKey));
      for (const request of configRequests(config, engine.instanceId)) {
        const answer = unwrap(await server.submit(request), `${options.configPath}: ${request.type}`);
        if (answer.type === 'BridgeName') bridgeName = answer.name;
      }
      log.verbose(`started handshakes with ${engine.greetPeers()} configured peer(s)`);
      const nat = config.nat;
      if (nat !== undefined && nat.enabled === true) {
        const every = (nat.stunRefreshIntervalSecs ?? 0) > 0 ? nat.stunRefreshIntervalSecs! : DEFAULT_NAT_TICK_SECS;
        const tick = (): void => {
          void server.submit({ type: 'NatTick' }).then((r) => {
            if (r.type === 'Err') log.error(`NAT tick: ${r.message}`);
          });
        };
        setTimeout(tick, FIRST_NAT_TICK_MS).unref();
        natTimer = setInterval(tick, every * 1000);
      }
    }
    if (options.metrics !== undefined) metricsServer = await serveMetrics(options.metrics, engine);
  } catch (error) {
    await teardown().catch(() => undefined);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    throw error;
  }

  const metricsAddress = metricsServer === null ? null : describeAddress(metricsServer.address());
  log.verbose(`node ready: control ${options.controlPath}${metricsAddress === null ? '' : `, metrics http://${metricsAddress}${METRICS_PATH}`}`);
  options.onReady?.({ controlPath: options.controlPath, metricsAddress, bridgeName });

  return new Promise<number>((resolve) => {
    let stopping = false;
    stop = (reason: string): void => {
      if (stopping) return;
      stopping = true;
      log.verbose(`shutting down: ${reason}`);
      void teardown()
        .catch((error: unknown) => log.error(`shutdown: ${(error as Error).message}`))
        .finally(() => {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          resolve(0);
        });
    };
    shutdownAfterAnswer = () => stop?.('Shutdown request');
    if (signalledEarly !== null) stop(signalledEarly);
  });
}

function describeAddress(address: ReturnType<http.Server['address']>): string | null {
  if (address === null || typeof address === 'string') return address;
  return address.family === 'IPv6' ? `[${address.address}]:${address.port}` : `${address.address}:${address.port}`;
}

/** GET /metrics → the engine's Prometheus text; everything else 404 (405 for other methods). */
async function serveMetrics(address: { host: string; port: number }, engine: OverlayEngine): Promise<http.Server> {
  const server = http.createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (path !== METRICS_PATH) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const body = engine.metrics();
    response.writeHead(200, { 'content-type': METRICS_CONTENT_TYPE });
    response.end(request.method === 'HEAD' ? undefined : body);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new OverlayError(`cannot serve metrics on ${address.host}:${address.port}: ${error.message}`)));
    server.listen(address.port, address.host, () => resolve());
  });
  return server;
}
