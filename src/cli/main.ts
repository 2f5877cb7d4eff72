/** The tswg command line: dispatches subcommands and turns errors into messages and exit codes. */
import { CliError, genkey, genpsk, pubkey, readStdin } from './key-commands.js';

const USAGE = `Usage: tswg <command>

Userspace WireGuard in TypeScript.

Commands:
  genkey     print a new random private key (base64), as wg genkey
  pubkey     read a base64 private key on stdin, print its public key, as wg pubkey
  genpsk     print a new random pre-shared key (base64), as wg genpsk
  --help     show this help

Examples:
  tswg genkey | tee private.key | tswg pubkey > public.key
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 1 : 0;
  }
  if (rest.length > 0 && ['genkey', 'pubkey', 'genpsk'].includes(command)) {
    throw new CliError(`${command} takes no arguments (got: ${rest.join(' ')})`);
  }
  switch (command) {
    case 'genkey':
      process.stdout.write(genkey());
      return 0;
    case 'genpsk':
      process.stdout.write(genpsk());
      return 0;
    case 'pubkey':
      process.stdout.write(pubkey(await readStdin()));
      return 0;
    default:
      throw new CliError(`unknown command '${command}'; run 'tswg --help' for the list`);
  }
}

export function run(argv: string[]): void {
  main(argv).then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error);
      process.stderr.write(`tswg: ${message}\n`);
      process.exitCode = 1;
    },
  );
}
