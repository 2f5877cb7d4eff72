/**
 * `tswg node check-config FILE`: read a node configuration file with the
 * parser the node itself uses, and say what it would set up, without touching
 * the kernel, the data directory or the network. A bad file exits 2 with the
 * field named ("node.yaml: peers[1].endpoint: …"), as the node would refuse it.
 */
import { DEFAULT_WG_PORT, loadNodeConfig, type NodeConfig } from '../overlay/index.js';
import { UsageError } from './key-commands.js';
import { errorMessage } from '../platform/index.js';

const CHECK_CONFIG_USAGE = 'Usage: tswg node check-config FILE';

/** What a valid configuration sets up, one `name  value` line each. */
function describeNodeConfig(path: string, config: NodeConfig): string {
  const rows: Array<[string, string]> = [
    ['deployment', config.deployment],
    ['instance id', config.instanceId ?? "(the data directory's)"],
    ['cluster', config.clusterCidr],
    ['slice', config.sliceCidr ?? (config.membership === undefined ? '(allocated at start)' : '(from etcd)')],
    ['port', String(config.wgPort ?? DEFAULT_WG_PORT)],
    ['dns domain', config.dnsDomain ?? `${config.deployment}.internal`],
    ['nat', config.nat?.enabled === true ? `on (${config.nat.stunServers?.length ?? 0} STUN server(s) given)` : 'off'],
    ['peers', String(config.peers.length)],
    [
      'membership',
      config.membership === undefined
        ? 'static (this file and the control socket)'
        : `etcd (${config.membership.etcd.endpoints.join(', ')}, prefix ${config.membership.etcd.prefix})`,
    ],
  ];
  const width = Math.max(...rows.map(([name]) => name.length));
  return `${path}: ok\n${rows.map(([name, value]) => `  ${name.padEnd(width)}  ${value}`).join('\n')}\n`;
}

/** Run `tswg node check-config ARGS`: 0 and a summary, or a UsageError (exit 2) naming the file and field. */
export function runCheckConfig(argv: readonly string[]): number {
  if (argv.length !== 1 || argv[0]!.startsWith('-')) throw new UsageError(`expected one configuration file; ${CHECK_CONFIG_USAGE}`);
  const path = argv[0]!;
  let config: NodeConfig;
  try {
    config = loadNodeConfig(path);
  } catch (error) {
    throw new UsageError(errorMessage(error));
  }
  process.stdout.write(describeNodeConfig(path, config));
  return 0;
}
