/**
 * `tswg node --data-dir DIR [--config FILE] [--control SOCKET] [--metrics HOST:PORT]`:
 * the long-running overlay node. It wires the engine to the control socket,
 * applies the embedded config (SetupGlobalOverlay + AddPeer per peer, so a
 * small mesh needs no orchestrator), serves Prometheus metrics, drives the
 * NAT tick itself when the config enables NAT, and on SIGINT/SIGTERM or a
 * Shutdown request reverts everything, removes the socket and exits 0. When
 * the global device dies it is restarted once with the same setup and peers;
 * a second death soon after, or a failed restart, stops the node with exit 1.
 *
 * Order at start: the config and the data directory are checked (nothing is
 * created), then the control socket (it refuses to start when another node
 * answers there, before anything on the host is touched), then the engine
 * (which creates the data directory and identity on first run), the config's
 * requests, then metrics; "ready" is logged (and written to stdout) last.
 */
import { existsSync, rmSync, unlinkSync } from 'node:fs';
import http from 'node:http';
import { dirname, join, resolve } from 'node:path';
import type { Logger } from '../device/index.js';
import { loadNodeConfig, type NodeConfig } from './config-file.js';
import { startNodeMembership, STATIC_MEMBERSHIP_VIEW, type NodeMembership } from './membership/node-membership.js';
import { ControlServer } from './control-server.js';
import { DEVICE_RESTART_WINDOW_MS, STATE_FILE_NAME } from './constants.js';
import { OverlayEngine } from './engine.js';
import { OverlayError } from './errors.js';
import { METRICS_CONTENT_TYPE } from './metrics.js';
import type { Request, Response } from './protocol.js';
import { checkDataDir } from './state-store.js';
import { exitNow } from '../platform/index.js';

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

/** The outermost directory of `path` (itself included) that does not exist yet; null when `path` exists. */
function outermostMissing(path: string): string | null {
  let missing: string | null = null;
  for (let current = resolve(path); ; current = dirname(current)) {
    if (existsSync(current)) return missing;
    missing = current;
    if (dirname(current) === current) return missing;
  }
}

/**
 * Run the node until a signal, a Shutdown request or a fatal device failure;
 * resolves with the exit code (0 after a clean stop, 1 when the global
 * device died and could not be restarted, or a second signal cut the
 * clean-up short). A failed start rejects, having removed what it created:
 * the control socket, and the data directory or state file if this start
 * made them (so no identity is minted by a start that never ran).
 */
export async function runNodeDaemon(options: NodeDaemonOptions): Promise<number> {
  const log = options.log;
  let stop: ((reason: string, code?: number) => void) | null = null;
  let signalledEarly: string | null = null;
  let signals = 0;
  let forceExit: ((code: number) => void) | null = null;
  /** Set once our control socket is bound: only then is the file at controlPath ours to remove. */
  let listening = false;
  // Ours from the first instant: a signal during start-up stops the node once it is up; a second one exits at once.
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      log.error(`second ${signal}: exiting now, without finishing the clean-up`);
      try {
        if (listening) unlinkSync(options.controlPath);
      } catch {
        // Gone already.
      }
      if (forceExit !== null) forceExit(1);
      else exitNow(1);
      return;
    }
    if (stop !== null) stop(signal);
    else signalledEarly ??= signal;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const offSignals = (): void => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };

  // Read the config and check the data directory before touching anything, so a bad one changes nothing.
  let config: NodeConfig | null;
  const statePath = join(options.dataDir, STATE_FILE_NAME);
  const missingDir = outermostMissing(options.dataDir);
  const stateExisted = existsSync(statePath);
  try {
    config = options.configPath === undefined ? null : loadNodeConfig(options.configPath);
    checkDataDir(options.dataDir);
  } catch (error) {
    offSignals();
    throw error;
  }

  let engine: OverlayEngine | null = null;
  let shutdownAfterAnswer: (() => void) | null = null;
  let membership: NodeMembership | null = null;
  const handler = async (request: Request): Promise<Response> => {
    if (engine === null) return { type: 'Err', message: 'the node is still starting' };
    const response = await engine.handle(request);
    if (response.type === 'Status') response.membership = membership?.membership.status() ?? STATIC_MEMBERSHIP_VIEW;
    if (engine.shutdownRequested) queueMicrotask(() => shutdownAfterAnswer?.());
    return response;
  };
  let server: ControlServer;
  try {
    server = await ControlServer.listen(options.controlPath, handler, (message) => log.error(message));
    listening = true;
  } catch (error) {
    offSignals();
    throw error;
  }
  let metricsServer: http.Server | null = null;
  let natTimer: NodeJS.Timeout | null = null;
  let lastRestartAt = -Infinity;

  const onDeviceFailure = (reason: string): void => {
    if (Date.now() - lastRestartAt < DEVICE_RESTART_WINDOW_MS) {
      failed(`${reason}; it failed again within ${DEVICE_RESTART_WINDOW_MS / 1000} s of a restart, giving up`);
      return;
    }
    lastRestartAt = Date.now();
    log.error(`${reason}; restarting it`);
    void server.enqueue(() => engine!.restartGlobal()).catch((error: unknown) => failed(`${reason}; restarting it failed: ${(error as Error).message}`));
  };
  let fatal: string | null = null;
  const failed = (reason: string): void => {
    log.error(reason);
    if (stop !== null) stop(reason, 1);
    else fatal ??= reason;
  };

  const teardown = async (): Promise<void> => {
    if (natTimer !== null) clearInterval(natTimer);
    natTimer = null;
    const metrics = metricsServer;
    if (metrics !== null) {
      const closed = new Promise<void>((resolve) => metrics.close(() => resolve()));
      // A scraper's keep-alive connection must not hold the shutdown.
      metrics.closeAllConnections();
      await closed;
    }
    // Withdrawn first, so peers drop this node now rather than when its lease expires.
    await membership?.stop(true);
    // Shutdown first (through the queue, after at most SHUTDOWN_QUEUE_WAIT_MS of what is in flight), then the socket goes.
    await server.submit({ type: 'Shutdown' });
    await server.close();
    await engine?.close();
  };

  let bridgeName: string | null = null;
  try {
    const live = new OverlayEngine({
      dataDir: options.dataDir,
      log,
      onDeviceFailure,
      ...(options.uapiDirectory === undefined ? {} : { uapiDirectory: options.uapiDirectory }),
      ...(options.firewall === undefined ? {} : { firewall: options.firewall }),
    });
    engine = live;
    await live.sweepOrphans();
    if (config !== null) {
      // The slice and peers come from the config file, or from etcd when it has a membership section.
      const host = {
        publicKey: live.publicKey,
        instanceId: live.instanceId,
        status: () => live.status(),
        submit: (r: Request) => server.submit(r),
        setConfigPeers: (keys: Iterable<string>) => live.setConfigPeers(keys),
        greetPeer: (key: string) => void live.greetPeer(key),
        localIsolation: () => live.localIsolation(),
      };
      membership = await startNodeMembership(config, options.configPath!, host, options.dataDir, log);
      bridgeName = membership.bridgeName;
      log.verbose(`started handshakes with ${live.greetPeers()} configured peer(s)`);
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
    if (options.metrics !== undefined) metricsServer = await serveMetrics(options.metrics, live);
    if (fatal !== null) throw new OverlayError(fatal);
  } catch (error) {
    await teardown().catch(() => undefined);
    // A start that never ran leaves no identity behind: only what this start created goes.
    if (missingDir !== null) rmSync(missingDir, { recursive: true, force: true });
    else if (!stateExisted) rmSync(statePath, { force: true });
    offSignals();
    throw error;
  }

  const metricsAddress = metricsServer === null ? null : describeAddress(metricsServer.address());
  log.verbose(`node ready: control ${options.controlPath}${metricsAddress === null ? '' : `, metrics http://${metricsAddress}${METRICS_PATH}`}`);
  options.onReady?.({ controlPath: options.controlPath, metricsAddress, bridgeName });

  return new Promise<number>((resolve) => {
    let stopping = false;
    forceExit = (code) => {
      offSignals();
      resolve(code);
    };
    stop = (reason: string, code = 0): void => {
      if (stopping) return;
      stopping = true;
      log.verbose(`shutting down: ${reason}`);
      void teardown()
        .catch((error: unknown) => log.error(`shutdown: ${(error as Error).message}`))
        .finally(() => {
          offSignals();
          resolve(code);
        });
    };
    shutdownAfterAnswer = () => stop?.('Shutdown request');
    if (fatal !== null) stop(fatal, 1);
    else if (signalledEarly !== null) stop(signalledEarly);
  });
}

/** The start-up line about --metrics: where it listens, and that the page is readable by whoever reaches it. */
export function describeMetricsListen(address: string): string {
  const all = address.startsWith('0.0.0.0:') || address.startsWith('[::]:');
  return `metrics on http://${address}${METRICS_PATH} (${all ? 'all addresses; ' : ''}the page names peers and endpoints)`;
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
