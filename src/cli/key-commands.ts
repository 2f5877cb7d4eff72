/**
 * `tswg genkey`, `tswg pubkey`, `tswg genpsk`: the same text as wg(8) prints,
 * one base64 key and a newline.
 */
import { fstatSync } from 'node:fs';
import { isatty } from 'node:tty';
import { decodeKey, encodeKey, generatePresharedKey, generatePrivateKey, publicKeyOf } from '../noise/index.js';

/** A failure to report: `tswg: message`, exit status 1. */
export class CliError extends Error {
  override readonly name: string = 'CliError';
}

/** Bad flags or arguments: exit status 2 (0 success, 1 runtime failure, 2 usage). */
export class UsageError extends CliError {
  override readonly name = 'UsageError';
}

/** The exit status for an error that reached the top: 2 for usage errors, else 1. */
export function exitCodeOf(error: unknown): number {
  return error instanceof UsageError ? 2 : 1;
}

/** Others' read, write and execute bits of a file mode (S_IRWXO). */
const OTHERS_PERMISSIONS = 0o007;

/**
 * The warning wg(8) gives before writing a secret key where others can read
 * it: to a terminal (scrollback, screen sharing) or to a regular file with
 * any permission bit for others. Null when the output looks private.
 */
export function secretOutputWarning(fd = 1): string | null {
  if (isatty(fd)) return 'Warning: writing a secret key to a terminal; redirect it to a file only you can read (umask 077).\n';
  try {
    const stat = fstatSync(fd);
    if (stat.isFile() && (stat.mode & OTHERS_PERMISSIONS) !== 0) return 'Warning: writing private key to world accessible file.\n';
  } catch {
    // No standard output to judge (closed): nothing to warn about.
  }
  return null;
}

export function genkey(): string {
  return `${encodeKey(generatePrivateKey())}\n`;
}

export function genpsk(): string {
  return `${encodeKey(generatePresharedKey())}\n`;
}

/** The public key of the base64 private key in `input` (trailing whitespace allowed, as wg allows a newline). */
export function pubkey(input: string): string {
  const text = input.replace(/\s+$/, '');
  let privateKey: Uint8Array;
  try {
    privateKey = decodeKey(text, 'private key');
  } catch {
    throw new CliError('Key is not the correct length or format: expected a 44-character base64 private key on stdin');
  }
  return `${encodeKey(publicKeyOf(privateKey))}\n`;
}

/** Read all of standard input as text (bounded: a key is 44 bytes, so 4 KiB is plenty). */
export async function readStdin(limit = 4096): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of process.stdin) {
    const buffer = chunk as Buffer;
    chunks.push(buffer);
    length += buffer.length;
    if (length > limit) throw new CliError(`standard input is longer than ${limit} bytes; expected one key`);
  }
  return Buffer.concat(chunks).toString('utf8');
}
