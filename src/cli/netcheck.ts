/**
 * `tswg netcheck`: ask STUN servers, from one local UDP socket, how this
 * host's traffic appears from outside: the server-reflexive address and the
 * NAT's mapping behaviour (RFC 4787). The same mapped address seen by two
 * different servers means the NAT maps endpoint-independently (hole punching
 * works); different addresses mean an endpoint-dependent ("symmetric")
 * mapping, where peers need a relay.
 */
import { formatEndpoint, type Endpoint, createLogger, parseLogLevel } from '../device/index.js';
import { openSocketPort, StunClient, parseStunServer, resolveStunServer, type BindingResult } from '../nat/index.js';
import { DEFAULT_NETCHECK_STUN_SERVERS, DEFAULT_NETCHECK_TIMEOUT_MS, EXIT_FAILURE, EXIT_OK, EXIT_USAGE } from './constants.js';
import { UsageError } from './key-commands.js';
import { errorMessage } from '../platform/index.js';

export const NETCHECK_USAGE = `Usage: tswg netcheck [--stun HOST[:PORT] ...] [--json] [--timeout-ms N]

Ask each STUN server (RFC 8489) from one local UDP socket for this host's
server-reflexive address, and report the NAT mapping behaviour:
  endpoint-independent  every server saw the same address and port
  endpoint-dependent    servers saw different ones (hole punching will not work)
  unknown               fewer than two servers answered

  --stun HOST[:PORT]  a STUN server (port 3478 when left out; IPv6 as [addr]:port); repeatable;
                      without it: ${DEFAULT_NETCHECK_STUN_SERVERS.join(' and ')}
  --json              print one JSON document and nothing else, errors included:
                      {mapped, mappingBehavior, servers: [{server, mapped, rttMs, error?}], error?}
  --timeout-ms N      give up on a server after N ms (default ${DEFAULT_NETCHECK_TIMEOUT_MS})
  --help              show this help

Exit status: 0 when at least one server answered, 1 when none did, 2 on bad arguments.
LOG_LEVEL=verbose logs every request and dropped response on stderr.
`;

type MappingBehavior = 'endpoint-independent' | 'endpoint-dependent' | 'unknown';

interface NetcheckArgs {
  servers: string[];
  json: boolean;
  timeoutMs: number;
}

interface ServerReport {
  server: string;
  mapped: string | null;
  error?: string;
  rttMs: number | null;
}

interface NetcheckReport {
  mapped: string | null;
  mappingBehavior: MappingBehavior;
  servers: ServerReport[];
  /** Why the check failed as a whole (bad arguments, no server answered); absent on success. */
  error?: string;
}

/** A UsageError (exit 2) that runNetcheck reports with the netcheck usage text. */
class NetcheckUsageError extends UsageError {}

/** Parse the arguments after `netcheck`; null means --help. Throws NetcheckUsageError. */
function parseNetcheckArgs(argv: string[]): NetcheckArgs | null {
  const args: NetcheckArgs = { servers: [], json: false, timeoutMs: DEFAULT_NETCHECK_TIMEOUT_MS };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      const next = argv[++i];
      if (next === undefined) throw new NetcheckUsageError(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case '--help':
      case '-h':
        return null;
      case '--stun': {
        const server = value();
        try {
          parseStunServer(server);
        } catch (error) {
          throw new NetcheckUsageError(errorMessage(error));
        }
        args.servers.push(server);
        break;
      }
      case '--json':
        args.json = true;
        break;
      case '--timeout-ms': {
        const text = value();
        if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > 600_000) {
          throw new NetcheckUsageError(`--timeout-ms must be a whole number of milliseconds in 1..600000, got '${text}'`);
        }
        args.timeoutMs = Number(text);
        break;
      }
      default:
        throw new NetcheckUsageError(`unknown argument '${arg}'`);
    }
  }
  if (args.servers.length === 0) args.servers.push(...DEFAULT_NETCHECK_STUN_SERVERS);
  return args;
}

/** endpoint-independent / endpoint-dependent from the answers of distinct servers; unknown with fewer than two. */
function mappingBehavior(answers: Array<{ server: Endpoint; mapped: Endpoint }>): MappingBehavior {
  const distinct = new Map<string, string>();
  for (const { server, mapped } of answers) distinct.set(formatEndpoint(server), formatEndpoint(mapped));
  if (distinct.size < 2) return 'unknown';
  return new Set(distinct.values()).size === 1 ? 'endpoint-independent' : 'endpoint-dependent';
}


/** Ask every server from one socket. Servers that fail to resolve or answer get an error entry. */
async function netcheck(args: NetcheckArgs): Promise<NetcheckReport & { localPort: number }> {
  const log = createLogger(parseLogLevel(process.env.LOG_LEVEL), 'netcheck');
  // The socket's family follows the first server that resolves; the others are resolved in that family.
  const resolved: Array<Endpoint | Error> = [];
  let family: 4 | 6 | undefined;
  for (const text of args.servers) {
    try {
      const endpoint = await resolveStunServer(text, family);
      family ??= endpoint.family;
      resolved.push(endpoint);
    } catch (error) {
      resolved.push(error instanceof Error ? error : new Error(String(error)));
    }
  }
  const port = await openSocketPort(family ?? 4);
  const client = new StunClient(port, { log });
  try {
    const outcomes = await Promise.all(
      resolved.map(async (server): Promise<BindingResult | Error> => {
        if (server instanceof Error) return server;
        return client.binding(server, { timeoutMs: args.timeoutMs }).catch((error: unknown) => new Error(errorMessage(error)));
      }),
    );
    const servers: ServerReport[] = [];
    const answers: Array<{ server: Endpoint; mapped: Endpoint }> = [];
    outcomes.forEach((outcome, i) => {
      const server = resolved[i]!;
      if (outcome instanceof Error) {
        servers.push({ server: args.servers[i]!, mapped: null, error: outcome.message, rttMs: null });
        return;
      }
      servers.push({ server: args.servers[i]!, mapped: formatEndpoint(outcome.mapped), rttMs: Math.round(outcome.rttMs * 10) / 10 });
      answers.push({ server: server as Endpoint, mapped: outcome.mapped });
    });
    return {
      mapped: answers[0] !== undefined ? formatEndpoint(answers[0].mapped) : null,
      mappingBehavior: mappingBehavior(answers),
      servers,
      localPort: port.localPort,
    };
  } finally {
    client.close();
    port.close();
  }
}

function humanReport(report: NetcheckReport & { localPort: number }): string {
  const width = Math.max(...report.servers.map((s) => s.server.length));
  const lines = [`local UDP port ${report.localPort}`];
  for (const s of report.servers) {
    const what = s.mapped !== null ? `mapped ${s.mapped}  rtt ${s.rttMs} ms` : `failed: ${s.error}`;
    lines.push(`  ${s.server.padEnd(width)}  ${what}`);
  }
  const answered = report.servers.filter((s) => s.mapped !== null).length;
  lines.push(`server-reflexive address: ${report.mapped ?? 'none'}`);
  const why =
    report.mappingBehavior === 'unknown'
      ? `${answered} server${answered === 1 ? '' : 's'} answered; two different servers are needed`
      : report.mappingBehavior === 'endpoint-independent'
        ? 'every server saw the same address and port'
        : 'servers saw different addresses or ports';
  lines.push(`NAT mapping: ${report.mappingBehavior} (${why})`);
  return `${lines.join('\n')}\n`;
}

const NO_ANSWER = 'no STUN server answered';

/** One JSON document on stdout, whatever happened: what --json promises scripts. */
function writeJson(report: NetcheckReport): void {
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

/** Run `tswg netcheck ARGS`; returns the exit status (0 answered, 1 none answered, 2 bad arguments). */
export async function runNetcheck(argv: string[]): Promise<number> {
  // Decided before parsing, so that even an argument error comes back as JSON.
  const json = argv.includes('--json');
  let args: NetcheckArgs | null;
  try {
    args = parseNetcheckArgs(argv);
  } catch (error) {
    if (json) writeJson({ mapped: null, mappingBehavior: 'unknown', servers: [], error: errorMessage(error) });
    else process.stderr.write(`tswg netcheck: ${errorMessage(error)}\n\n${NETCHECK_USAGE}`);
    return EXIT_USAGE;
  }
  if (args === null) {
    process.stdout.write(NETCHECK_USAGE);
    return EXIT_OK;
  }
  let full: NetcheckReport & { localPort: number };
  try {
    full = await netcheck(args);
  } catch (error) {
    if (!json) throw error;
    writeJson({ mapped: null, mappingBehavior: 'unknown', servers: [], error: errorMessage(error) });
    return EXIT_FAILURE;
  }
  const { localPort: _localPort, ...report } = full;
  if (report.mapped === null) report.error = NO_ANSWER;
  if (json) {
    writeJson(report);
    return report.mapped === null ? EXIT_FAILURE : EXIT_OK;
  }
  process.stdout.write(humanReport(full));
  if (report.mapped === null) {
    const failures = report.servers.map((s) => `  ${s.server}: ${s.error ?? 'no answer'}`).join('\n');
    process.stderr.write(`tswg netcheck: ${NO_ANSWER}:\n${failures}\n`);
    return EXIT_FAILURE;
  }
  return EXIT_OK;
}
