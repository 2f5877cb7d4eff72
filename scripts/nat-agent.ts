/**
 * A small process that runs one piece of tswg's relaying inside a network
 * namespace, next to a WireGuard device there (the peer proxies must reach
 * the device on that namespace's loopback). The relay and TURN integration
 * tests start it with `ip netns exec`; it prints one JSON line per event on
 * stdout and runs until SIGTERM/SIGINT.
 *
 *   node dist/scripts/nat-agent.js relay-server --port 0 --credential C [--max-sessions N] [--external-addr IP]
 *     → {"event":"listening","endpoint":{...}}            (C: at least 16 bytes, the relay refuses less)
 *   node dist/scripts/nat-agent.js relay-client --server IP:PORT --credential C --private-key-file F --device-port P [--peer B64]...
 *     (F holds the node's base64 WireGuard private key, as `wg genkey` writes it: REGISTER proves it)
 *     → {"event":"registered"}, then {"event":"routed","peer":B64,"endpoint":{...}} per --peer
 *   node dist/scripts/nat-agent.js turn-client --server IP:PORT --username U --password P --device-port P [--permit IP]... [--channel IP:PORT]...
 *     → {"event":"allocated","relayed":{...},"mapped":{...}}, {"event":"permitted","address":IP}, {"event":"bound","peer":..,"channel":N}
 *
 * SIGUSR2 makes a TURN client print {"event":"counters",...} (how datagrams crossed: indications or ChannelData).
 * LOG_LEVEL=verbose logs to stderr. Failures print {"event":"error","message":...} and exit 1.
 */
import { readFileSync } from 'node:fs';
import { parseEndpoint } from '../src/device/addr.js';
import { createLogger, parseLogLevel } from '../src/device/logger.js';
import { RelayClient } from '../src/nat/relay/client.js';
import { RelayServer } from '../src/nat/relay/server.js';
import { TurnClient } from '../src/nat/turn/client.js';
import { decodeKey } from '../src/noise/keys.js';

function emit(event: Record<string, unknown>): void {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

/** `--name value` pairs; repeated names collect into a list. */
function parseArgs(argv: string[]): Map<string, string[]> {
  const options = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!;
    const value = argv[i + 1];
    if (!name.startsWith('--') || value === undefined) throw new Error(`expected --name value pairs, got '${argv.slice(i).join(' ')}'`);
    options.set(name.slice(2), [...(options.get(name.slice(2)) ?? []), value]);
  }
  return options;
}

function one(options: Map<string, string[]>, name: string, fallback?: string): string {
  const value = options.get(name)?.[0] ?? fallback;
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
}

async function main(): Promise<void> {
  const [mode, ...rest] = process.argv.slice(2);
  const options = parseArgs(rest);
  const log = createLogger(parseLogLevel(process.env.LOG_LEVEL), `nat-agent ${mode ?? ''}`);
  const closers: (() => unknown)[] = [];
  const stop = async () => {
    for (const close of closers.reverse()) await close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());

  switch (mode) {
    case 'relay-server': {
      const server = new RelayServer(
        { listenPort: Number(one(options, 'port', '0')), externalAddr: one(options, 'external-addr', ''), maxSessions: Number(one(options, 'max-sessions', '0')) },
        one(options, 'credential'),
        log,
      );
      closers.push(() => server.close());
      emit({ event: 'listening', endpoint: await server.start() });
      break;
    }
    case 'relay-client': {
      const client = new RelayClient({
        server: parseEndpoint(one(options, 'server')),
        credential: one(options, 'credential'),
        localPrivateKey: decodeKey(readFileSync(one(options, 'private-key-file'), 'utf8').trim(), 'private key'),
        devicePort: Number(one(options, 'device-port')),
        log,
      });
      closers.push(() => client.close());
      await client.start();
      emit({ event: 'registered' });
      for (const peer of options.get('peer') ?? []) emit({ event: 'routed', peer, endpoint: await client.routePeer(decodeKey(peer, 'peer public key')) });
      break;
    }
    case 'turn-client': {
      const client = new TurnClient({
        server: parseEndpoint(one(options, 'server')),
        username: one(options, 'username'),
        password: one(options, 'password'),
        devicePort: Number(one(options, 'device-port')),
        log,
      });
      closers.push(() => client.close());
      process.on('SIGUSR2', () => emit({ event: 'counters', ...client.counters }));
      const relayed = await client.allocate();
      emit({ event: 'allocated', relayed, mapped: client.mappedAddress });
      for (const address of options.get('permit') ?? []) {
        await client.permit(address);
        emit({ event: 'permitted', address });
      }
      for (const peer of options.get('channel') ?? []) emit({ event: 'bound', peer, channel: await client.bindChannel(parseEndpoint(peer)) });
      break;
    }
    default:
      throw new Error(`unknown mode '${mode ?? ''}': relay-server, relay-client or turn-client`);
  }
}

main().catch((error: unknown) => {
  emit({ event: 'error', message: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
