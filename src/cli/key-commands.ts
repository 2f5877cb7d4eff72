/**
 * `tswg genkey`, `tswg pubkey`, `tswg genpsk`: the same text as wg(8) prints,
 * one base64 key and a newline.
 */
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
