/**
 * Logging as wireguard-go does it: LOG_LEVEL=verbose|error|silent, lines
 * prefixed with the level and the interface name, peers named
 * `peer(AbCd…xYz0)`. LOG_FORMAT=json writes one JSON object per line
 * instead ({time, level, interface, msg}), for log shippers.
 */
export type LogLevel = 'verbose' | 'error' | 'silent';
export type LogFormat = 'text' | 'json';

export interface Logger {
  verbose(message: string): void;
  error(message: string): void;
}

export function parseLogLevel(text: string | undefined): LogLevel {
  if (text === 'verbose' || text === 'debug') return 'verbose';
  if (text === 'silent') return 'silent';
  return 'error';
}

/** LOG_FORMAT: `json` for one JSON object per line; anything else is wireguard-go's text. */
function parseLogFormat(text: string | undefined): LogFormat {
  return text?.toLowerCase() === 'json' ? 'json' : 'text';
}

/** Base64 characters shown at each end of a key; wireguard-go shows 4 and 4. */
const KEY_ABBREVIATION_CHARS = 4;
/** A 32-byte key in base64 is 43 characters and one '='. */
const KEY_BASE64_CHARS = 43;

/** A peer as wireguard-go names it in logs: `peer(` + the base64 key's first 4 and last 4 characters + `)`. */
export function peerLogName(publicKey: Uint8Array | string): string {
  const base64 = typeof publicKey === 'string' ? publicKey : Buffer.from(publicKey).toString('base64');
  const end = Math.min(base64.replace(/=+$/, '').length, KEY_BASE64_CHARS);
  return `peer(${base64.slice(0, KEY_ABBREVIATION_CHARS)}…${base64.slice(Math.max(end - KEY_ABBREVIATION_CHARS, 0), end)})`;
}

export function createLogger(
  level: LogLevel,
  interfaceName: string,
  write: (line: string) => void = (line) => process.stderr.write(line),
  format: LogFormat = parseLogFormat(process.env.LOG_FORMAT),
): Logger {
  const line =
    format === 'json'
      ? (prefix: string, message: string) => `${JSON.stringify({ time: new Date().toISOString(), level: prefix.toLowerCase(), interface: interfaceName, msg: message })}\n`
      : (prefix: string, message: string) => `${prefix}: (${interfaceName}) ${new Date().toISOString()} ${message}\n`;
  return {
    verbose: level === 'verbose' ? (message) => write(line('DEBUG', message)) : () => undefined,
    error: level === 'silent' ? () => undefined : (message) => write(line('ERROR', message)),
  };
}

export const silentLogger: Logger = { verbose: () => undefined, error: () => undefined };
