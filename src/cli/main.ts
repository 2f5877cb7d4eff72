/** The tswg command line: dispatches subcommands and turns errors into messages and exit codes. */
import { readFileSync } from 'node:fs';
import { parseDaemonArgs, runDaemon } from './daemon.js';
import { exitCodeOf, genkey, genpsk, pubkey, readStdin, secretOutputWarning, UsageError } from './key-commands.js';
import { errorMessage } from '../platform/index.js';

const USAGE = `Usage: tswg [-f|--foreground] INTERFACE
       tswg <command>

Userspace WireGuard in TypeScript, started like wireguard-go.

  tswg [-f] INTERFACE   create the TUN interface INTERFACE and serve it; configure it with
                        wg(8) through /var/run/wireguard/INTERFACE.sock. Returns once the
                        interface is ready and keeps serving in the background, unless -f
                        (or WG_PROCESS_FOREGROUND=1) keeps it in the foreground. Stops on
                        SIGINT/SIGTERM or when the interface is deleted (ip link del).
                        LOG_LEVEL=verbose|error|silent sets the logging.

Commands:
  genkey     print a new random private key (base64), as wg genkey
  pubkey     read a base64 private key on stdin, print its public key, as wg pubkey
  genpsk     print a new random pre-shared key (base64), as wg genpsk
  netcheck   ask STUN servers for this host's public address and NAT mapping behaviour
             (tswg netcheck [--stun HOST[:PORT] ...] [--json]; see tswg netcheck --help)
  node       the overlay node: tswg node --data-dir DIR [--config FILE] [--control SOCKET]
             [--metrics HOST:PORT] runs it; tswg node status|peers|nat|add-peer|remove-peer
             talks to it (see tswg node --help)
  version    print the version (also --version)
  help       show this help (also --help)

Examples:
  tswg genkey | tee private.key | tswg pubkey > public.key
  tswg wg0 && wg set wg0 private-key ./private.key listen-port 51820 && ip link set wg0 up
  WG_QUICK_USERSPACE_IMPLEMENTATION=tswg wg-quick up ./wg0.conf
`;

/** Command words: never taken as an interface name (`tswg version` must not create a TUN called "version"). */
export const RESERVED_WORDS: readonly string[] = ['version', 'help', 'node', 'netcheck', 'genkey', 'pubkey', 'genpsk'];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return `tswg v${pkg.version}\n`;
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (command === '--version' || command === '-v' || command === 'version') {
    process.stdout.write(version());
    return 0;
  }
  if (rest.length > 0 && ['genkey', 'pubkey', 'genpsk'].includes(command)) {
    throw new UsageError(`${command} takes no arguments (got: ${rest.join(' ')})`);
  }
  switch (command) {
    case 'genkey':
    case 'genpsk': {
      const warning = secretOutputWarning();
      if (warning !== null) process.stderr.write(warning);
      process.stdout.write(command === 'genkey' ? genkey() : genpsk());
      return 0;
    }
    case 'pubkey':
      process.stdout.write(pubkey(await readStdin()));
      return 0;
    case 'netcheck':
      // Loaded on demand: the WireGuard daemon should not carry NAT and overlay code in its memory.
      return (await import('./netcheck.js')).runNetcheck(rest);
    case 'node':
      return (await import('./node.js')).runNode(rest);
    default:
      if (command.startsWith('-') && command !== '-f' && command !== '--foreground') {
        throw new UsageError(`unknown option '${command}'; run 'tswg --help' for the list`);
      }
      {
        const args = parseDaemonArgs(argv);
        if (RESERVED_WORDS.includes(args.interfaceName)) {
          throw new UsageError(`'${args.interfaceName}' is a tswg command, not an interface name; run 'tswg --help'`);
        }
        return runDaemon(args);
      }
  }
}

/**
 * Run the command line and exit with its status: 0 success, 1 runtime
 * failure, 2 usage error. The exit is explicit, so nothing left running
 * (a NAT tick's STUN wait, a timer) can keep a finished or failed command
 * alive. (stdout and stderr are synchronous for files and pipes on Linux,
 * so nothing written is lost.)
 */
export function run(argv: string[]): void {
  main(argv).then(
    (code) => process.exit(code),
    (error: unknown) => {
      const message = errorMessage(error);
      process.stderr.write(`tswg: ${message}\n`);
      process.exit(exitCodeOf(error));
    },
  );
}
