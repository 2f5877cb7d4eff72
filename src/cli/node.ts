/**
 * `tswg node …`: the overlay node daemon and the client commands that talk
 * to it over its control socket.
 *
 *   tswg node --data-dir DIR [--config FILE] [--control SOCKET] [--metrics HOST:PORT] [--no-firewall]
 *   tswg node status|peers|nat [--control SOCKET] [--json]
 *   tswg node add-peer --public-key KEY --endpoint IP:PORT --allowed-ips CIDR[,CIDR…] [--keepalive N]
 *   tswg node remove-peer --public-key KEY
 *   tswg node services | service-setup | service-teardown | attach | detach | prune
 *   tswg node dns-register --name NAME --ip IP | dns-unregister --name NAME
 *   tswg node remote-isolation --public-key KEY --networks NAME=IP[,IP…][;NAME=…]|none
 *
 * People get tables; --json prints the node's answer as it came (one JSON
 * object), for scripts. An Err answer exits 1 with its message; bad flags
 * or arguments exit 2.
 */
import { createLogger, parseLogLevel } from '../device/index.js';
import { DEFAULT_CONTROL_SOCKET, ROAMING_ENDPOINT, requestOnce, describeMetricsListen, parseListenAddress, runNodeDaemon, StateStore, type NatStatusWire, type Request, type Response, type StatusSnapshot, formatNatStatusTable, formatPeersTable, formatServicesTable, formatStatusTable } from '../overlay/index.js';
import { exitNow } from '../platform/index.js';
import { preparePacketPath } from './packet-path-start.js';
import { runCheckConfig } from './check-config.js';
import { CliError, UsageError } from './key-commands.js';

const NODE_USAGE = `Usage: tswg node --data-dir DIR [--config FILE] [--control SOCKET] [--metrics HOST:PORT] [--no-firewall]
       tswg node status|peers|nat [--control SOCKET] [--json] [--watch SECONDS]
       tswg node add-peer --public-key KEY --endpoint IP:PORT --allowed-ips CIDR[,CIDR...] [--keepalive N] [--control SOCKET] [--json]
       tswg node remove-peer --public-key KEY [--control SOCKET] [--json]
       tswg node services [--control SOCKET] [--json] [--watch SECONDS]
       tswg node service-setup --service NAME [--mode auto|shared|dedicated] [--control SOCKET] [--json]
       tswg node service-teardown --service NAME [--control SOCKET] [--json]
       tswg node attach --pid PID --service NAME [--join-global] [--ephemeral] [--isolation-network NAME]
                        [--dns-server IP] [--dns-domain DOMAIN] [--control SOCKET] [--json]
       tswg node detach --pid PID [--control SOCKET] [--json]
       tswg node prune --live NAME[,NAME...] [--control SOCKET] [--json]
       tswg node dns-register --name NAME --ip IP [--control SOCKET] [--json]
       tswg node dns-unregister --name NAME [--control SOCKET] [--json]
       tswg node remote-isolation --public-key KEY --networks NAME=IP[,IP...][;NAME=IP...]|none
                        [--control SOCKET] [--json]
       tswg node pubkey --data-dir DIR
       tswg node check-config FILE

The overlay node: one global WireGuard interface (zl-<deployment>-<instance>-g)
per machine, its overlay IP, its peers, NAT traversal, status and metrics.

Daemon (stays in the foreground; SIGINT/SIGTERM reverts everything and exits 0):
  --data-dir DIR        state: keys, instance id, IP assignments (created, mode 0700)
  --config FILE         JSON or YAML: deployment, clusterCidr, [sliceCidr, wgPort, nat,
                        instanceId], peers: [{publicKey, endpoint, allowedIps,
                        persistentKeepaliveSecs}]; applied at start, so a mesh comes
                        up with no orchestrator
  --control SOCKET      the control socket (default ${DEFAULT_CONTROL_SOCKET}, mode 0600)
  --metrics HOST:PORT   serve Prometheus metrics on http://HOST:PORT/metrics; :PORT listens on
                        every address (the page names peers and their endpoints)
  --no-firewall         add no firewall rules (no masquerade, isolation networks or
                        bypass of the host's firewall); rootless mode implies it
  TSWG_FIREWALL=nftables|iptables|iptables-nft|iptables-legacy|off overrides the
                        firewall backend (default: the one the host already uses)
  LOG_LEVEL=verbose|error|silent sets the logging (stderr).
  If the global interface dies it is restarted once; if that fails, or it dies again
  within a minute, the node exits 1. A second SIGINT/SIGTERM exits at once (1).

Client commands (talk to a running node over --control SOCKET):
  status       interface, node IP, key, CIDRs and a table of peers
  peers        the peer table only
  nat          NAT candidates, per-peer connection type, last refresh
  add-peer     add (or update) a peer on the global overlay
  remove-peer  remove a peer
  services     the service overlays on this node: mode, bridge, subnet, members
  service-setup     create a service overlay (auto: its own bridge and subnet; shared: the
                    node-wide bridge; dedicated: its own bridge and WireGuard device); prints
                    its subnet, which the other nodes route to this node
  service-teardown  remove it (its containers are detached first)
  attach       put the process PID (in its own network namespace) on the service's network:
               eth0 on the service bridge, with --join-global also eth1 on the node slice
  detach       remove the process's links and give its addresses back
  prune        remove service bridges/devices (zl-…-b, zl-…-d) not named by --live
  dns-register    give NAME (in the node's DNS domain unless it ends with it) the address IP
                  in the node's resolver (on the node IP, port 53); again to add addresses
  dns-unregister  remove every record of NAME
  remote-isolation  the isolation-network members the node with KEY hosts (replacing what was
                    known of it; none forgets it): this node's firewall fences them too
  pubkey       print the node's public key from --data-dir (created there on first use,
               so peers' configs can be written before the node first runs)
  check-config read a --config FILE with the node's own parser and print what it sets up;
               touches nothing (exit 2 naming the bad field)
  --json       print the node's answer as one JSON object
  --watch S    (status, peers, nat) ask again every S seconds until interrupted

Exit status: 0 success, 1 failure (an Err answer, no node listening, a failed start),
2 bad flags or arguments, or a configuration file that does not check.
`;

export interface NodeDaemonArgs {
  dataDir: string;
  configPath?: string;
  controlPath: string;
  metrics?: { host: string; port: number };
  /** false: --no-firewall. */
  firewall?: boolean;
}

/** `--watch` bounds: faster than 10 Hz is noise, slower than an hour is not watching. */
const MIN_WATCH_SECONDS = 0.1;
const MAX_WATCH_SECONDS = 3600;
const CLEAR_SCREEN = '\x1b[H\x1b[2J';

type ClientCommand =
  | 'status'
  | 'peers'
  | 'nat'
  | 'add-peer'
  | 'remove-peer'
  | 'services'
  | 'service-setup'
  | 'service-teardown'
  | 'attach'
  | 'detach'
  | 'prune'
  | 'dns-register'
  | 'dns-unregister'
  | 'remote-isolation';
const CLIENT_COMMANDS: readonly ClientCommand[] = [
  'status',
  'peers',
  'nat',
  'add-peer',
  'remove-peer',
  'services',
  'service-setup',
  'service-teardown',
  'attach',
  'detach',
  'prune',
  'dns-register',
  'dns-unregister',
  'remote-isolation',
];
const READ_ONLY_COMMANDS: readonly ClientCommand[] = ['status', 'peers', 'nat', 'services'];
/** Valued flags of the container commands. */
const COMMAND_FLAGS: Partial<Record<ClientCommand, readonly string[]>> = {
  'add-peer': ['--public-key', '--endpoint', '--allowed-ips', '--keepalive'],
  'remove-peer': ['--public-key'],
  'service-setup': ['--service', '--mode'],
  'service-teardown': ['--service'],
  attach: ['--pid', '--service', '--isolation-network', '--dns-server', '--dns-domain'],
  detach: ['--pid'],
  prune: ['--live'],
  'dns-register': ['--name', '--ip'],
  'dns-unregister': ['--name'],
  'remote-isolation': ['--public-key', '--networks'],
};
const COMMAND_BOOLEANS: Partial<Record<ClientCommand, readonly string[]>> = { attach: ['--join-global', '--ephemeral'] };

/** "red=10.200.2.2,10.200.2.3;blue=10.200.2.4" → {red: [...], blue: [...]}; "none" → {}. The node checks names and addresses. */
function networksFlag(text: string): Record<string, string[]> {
  const networks: Record<string, string[]> = {};
  if (text === 'none') return networks;
  for (const entry of text.split(';')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new UsageError(`--networks: expected NAME=IP[,IP...] separated by ';', or none; got '${entry}'`);
    const name = entry.slice(0, eq);
    if (name in networks) throw new UsageError(`--networks: ${name} given twice`);
    networks[name] = entry.slice(eq + 1).split(',').filter((ip) => ip !== '');
  }
  return networks;
}

function pidFlag(text: string): number {
  if (!/^\d{1,7}$/.test(text) || Number(text) < 1) throw new UsageError(`--pid: expected a process id, got '${text}'`);
  return Number(text);
}

/** Flags as a map; `--flag value` and `--flag=value`. Boolean flags are listed. */
function parseFlags(argv: readonly string[], valued: readonly string[], booleans: readonly string[]): Map<string, string> {
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}'; run 'tswg node --help'`);
    const eq = arg.indexOf('=');
    const flag = eq < 0 ? arg : arg.slice(0, eq);
    if (booleans.includes(flag)) {
      if (eq >= 0) throw new UsageError(`${flag} takes no value`);
      flags.set(flag, 'true');
      continue;
    }
    if (!valued.includes(flag)) throw new UsageError(`unknown option '${flag}'; run 'tswg node --help'`);
    const value = eq >= 0 ? arg.slice(eq + 1) : argv[++i];
    if (value === undefined || value === '') throw new UsageError(`${flag} needs a value`);
    if (flags.has(flag)) throw new UsageError(`${flag} given twice`);
    flags.set(flag, value);
  }
  return flags;
}

export function parseNodeDaemonArgs(argv: readonly string[]): NodeDaemonArgs {
  const flags = parseFlags(argv, NODE_DAEMON_FLAGS, NODE_DAEMON_BOOLEANS);
  const dataDir = flags.get('--data-dir');
  if (dataDir === undefined) throw new UsageError("tswg node needs --data-dir DIR; run 'tswg node --help'");
  const args: NodeDaemonArgs = { dataDir, controlPath: flags.get('--control') ?? DEFAULT_CONTROL_SOCKET };
  const config = flags.get('--config');
  if (config !== undefined) args.configPath = config;
  if (flags.has('--no-firewall')) args.firewall = false;
  const metrics = flags.get('--metrics');
  if (metrics !== undefined) {
    try {
      args.metrics = parseListenAddress(metrics);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  return args;
}

/** The request a client command sends (after checking its flags). */
function clientRequest(command: ClientCommand, flags: Map<string, string>): Request {
  const required = (flag: string): string => {
    const value = flags.get(flag);
    if (value === undefined) throw new UsageError(`tswg node ${command} needs ${flag}`);
    return value;
  };
  switch (command) {
    case 'status':
    case 'peers':
    case 'services':
      return { type: 'Status' };
    case 'service-setup': {
      const mode = (flags.get('--mode') ?? 'auto').toLowerCase();
      if (mode !== 'auto' && mode !== 'shared' && mode !== 'dedicated') throw new UsageError(`--mode: expected auto, shared or dedicated, got '${mode}'`);
      return { type: 'SetupServiceOverlay', service: required('--service'), mode };
    }
    case 'service-teardown':
      return { type: 'TeardownServiceOverlay', service: required('--service') };
    case 'attach':
      return {
        type: 'AttachContainer',
        handle: { linuxPid: pidFlag(required('--pid')) },
        service: required('--service'),
        joinGlobal: flags.has('--join-global'),
        dnsServer: flags.get('--dns-server') ?? null,
        dnsDomain: flags.get('--dns-domain') ?? null,
        ephemeral: flags.has('--ephemeral'),
        isolationNetwork: flags.get('--isolation-network') ?? null,
      };
    case 'detach':
      return { type: 'DetachContainer', handle: { linuxPid: pidFlag(required('--pid')) } };
    case 'prune':
      return { type: 'PruneOrphanBridges', liveBridgeNames: required('--live').split(',').filter((name) => name !== '') };
    case 'nat':
      return { type: 'NatStatus' };
    case 'dns-register':
      return { type: 'RegisterDns', name: required('--name'), ip: required('--ip') };
    case 'dns-unregister':
      return { type: 'UnregisterDns', name: required('--name') };
    case 'remote-isolation':
      return { type: 'SetRemoteIsolation', node: required('--public-key'), networks: networksFlag(required('--networks')) };
    case 'remove-peer':
      return { type: 'RemovePeer', pubkey: required('--public-key'), scope: 'global' };
    case 'add-peer': {
      const keepaliveText = flags.get('--keepalive') ?? '0';
      if (!/^\d{1,5}$/.test(keepaliveText) || Number(keepaliveText) > 65535) throw new UsageError(`--keepalive: expected seconds 0..65535, got '${keepaliveText}'`);
      return {
        type: 'AddPeer',
        peer: {
          publicKey: required('--public-key'),
          endpoint: flags.get('--endpoint') ?? ROAMING_ENDPOINT,
          allowedIps: required('--allowed-ips'),
          persistentKeepaliveSecs: Number(keepaliveText),
          candidates: [],
        },
        scope: 'global',
      };
    }
  }
}

function render(command: ClientCommand, response: Response): string {
  switch (response.type) {
    case 'Status': {
      const { type: _type, ...snapshot } = response;
      const status = snapshot as StatusSnapshot;
      if (command === 'services') return formatServicesTable(status);
      return command === 'peers' ? formatPeersTable(status.peers) : formatStatusTable(status);
    }
    case 'ServiceOverlay': {
      const lines = [`service ${response.name}: ${response.mode}, bridge ${response.bridge}, subnet ${response.subnet}`];
      if (response.wgPublicKey !== null) lines.push(`dedicated device: key ${response.wgPublicKey}, port ${response.wgPort}, address ${response.overlayIp}`);
      return lines.join('\n');
    }
    case 'Attached': {
      const links = response.globalIp === null ? `eth0 ${response.ip}` : `eth0 ${response.ip}, eth1 ${response.globalIp}`;
      const conf = response.resolvConf;
      if (conf === undefined || conf === null) return links;
      // What the runtime writes to the container's /etc/resolv.conf.
      const resolv = [`nameserver ${conf.nameserver}`, ...(conf.search.length === 0 ? [] : [`search ${conf.search.join(' ')}`]), `options ${conf.options.join(' ')}`];
      return `${links}\nresolv.conf:\n${resolv.map((line) => `  ${line}`).join('\n')}`;
    }
    case 'PrunedBridges':
      return response.reclaimed.length === 0 ? 'nothing to prune' : `removed ${response.reclaimed.join(', ')}`;
    case 'NatStatus': {
      const { type: _type, ...nat } = response;
      return formatNatStatusTable(nat as NatStatusWire);
    }
    default:
      return 'ok\n';
  }
}

/** Ask once and print; returns the exit code. */
async function askAndPrint(command: ClientCommand, path: string, request: Request, json: boolean): Promise<number> {
  let response: Response;
  try {
    response = await requestOnce(path, request);
  } catch (error) {
    throw new CliError((error as Error).message);
  }
  if (json) {
    process.stdout.write(`${JSON.stringify(response)}\n`);
    return response.type === 'Err' ? 1 : 0;
  }
  if (response.type === 'Err') throw new CliError(response.message);
  const text = render(command, response);
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  return 0;
}

async function runClient(command: ClientCommand, argv: readonly string[]): Promise<number> {
  const readOnly = READ_ONLY_COMMANDS.includes(command);
  const valued = ['--control', ...(readOnly ? ['--watch'] : []), ...(COMMAND_FLAGS[command] ?? [])];
  const flags = parseFlags(argv, valued, ['--json', ...(COMMAND_BOOLEANS[command] ?? [])]);
  const request = clientRequest(command, flags);
  const path = flags.get('--control') ?? DEFAULT_CONTROL_SOCKET;
  const json = flags.has('--json');
  const watch = flags.get('--watch');
  if (watch === undefined) return askAndPrint(command, path, request, json);
  const seconds = Number(watch);
  if (!Number.isFinite(seconds) || seconds < MIN_WATCH_SECONDS || seconds > MAX_WATCH_SECONDS) {
    throw new UsageError(`--watch: expected seconds ${MIN_WATCH_SECONDS}..${MAX_WATCH_SECONDS}, got '${watch}'`);
  }
  // Redraw until interrupted (SIGINT ends the process as usual).
  for (;;) {
    if (!json && process.stdout.isTTY) process.stdout.write(CLEAR_SCREEN);
    if (!json) process.stdout.write(`${new Date().toISOString()}  ${path}\n`);
    await askAndPrint(command, path, request, json);
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  }
}

export async function runNode(argv: readonly string[]): Promise<number> {
  const [first, ...rest] = argv;
  if (first === '--help' || first === '-h' || first === 'help' || argv.includes('--help')) {
    process.stdout.write(NODE_USAGE);
    return 0;
  }
  if (first !== undefined && (CLIENT_COMMANDS as readonly string[]).includes(first)) return runClient(first as ClientCommand, rest);
  if (first === 'check-config') return runCheckConfig(rest);
  if (first === 'pubkey') {
    const dataDir = parseFlags(rest, ['--data-dir'], []).get('--data-dir');
    if (dataDir === undefined) throw new UsageError('tswg node pubkey needs --data-dir DIR');
    try {
      process.stdout.write(`${new StateStore(dataDir).load().publicKey}\n`);
    } catch (error) {
      throw new CliError((error as Error).message);
    }
    return 0;
  }
  if (first !== undefined && !first.startsWith('-')) throw new UsageError(`unknown node command '${first}'; run 'tswg node --help'`);
  const args = parseNodeDaemonArgs(argv);
  const log = createLogger(parseLogLevel(process.env.LOG_LEVEL), 'node');
  try {
    await preparePacketPath(log);
  } catch (error) {
    throw new CliError((error as Error).message);
  }
  let code: number;
  try {
    code = await runNodeDaemon({
      dataDir: args.dataDir,
      controlPath: args.controlPath,
      log,
      ...(args.configPath === undefined ? {} : { configPath: args.configPath }),
      ...(args.metrics === undefined ? {} : { metrics: args.metrics }),
      ...(args.firewall === undefined ? {} : { firewall: args.firewall }),
      onReady: ({ controlPath, metricsAddress, bridgeName }) => {
        const parts = [`control ${controlPath}`];
        if (bridgeName !== null) parts.push(`interface ${bridgeName}`);
        if (metricsAddress !== null) parts.push(`metrics http://${metricsAddress}/metrics`);
        // Say plainly who can read the metrics page: ":PORT" means every address, as exporters do.
        if (metricsAddress !== null) process.stdout.write(`tswg node: ${describeMetricsListen(metricsAddress)}\n`);
        process.stdout.write(`tswg node: ready (${parts.join(', ')})\n`);
      },
    });
  } catch (error) {
    throw new CliError((error as Error).message);
  }
  // Everything is reverted: leave now, even with a NAT tick's DNS lookup still stuck in the thread pool.
  exitNow(code);
}

/** Commands that work on local files only, with no node running. */
export const LOCAL_NODE_COMMANDS: readonly string[] = ['pubkey', 'check-config'];
/** The daemon's valued flags and its boolean flags. */
export const NODE_DAEMON_FLAGS: readonly string[] = ['--data-dir', '--config', '--control', '--metrics'];
export const NODE_DAEMON_BOOLEANS: readonly string[] = ['--no-firewall'];
// The command table, for the reference docs' test (docs/cli.md lists every command and flag).
export { CLIENT_COMMANDS, COMMAND_BOOLEANS, COMMAND_FLAGS, READ_ONLY_COMMANDS };
