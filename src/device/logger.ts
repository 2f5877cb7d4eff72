/**
 * Logging as wireguard-go does it: LOG_LEVEL=verbose|error|silent, lines
 * prefixed with the level and the interface name.
 */
export type LogLevel = 'verbose' | 'error' | 'silent';

export interface Logger {
  verbose(message: string): void;
  error(message: string): void;
}

export function parseLogLevel(text: string | undefined): LogLevel {
  if (text === 'verbose' || text === 'debug') return 'verbose';
  if (text === 'silent') return 'silent';
  return 'error';
}

export function createLogger(level: LogLevel, interfaceName: string, write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const line = (prefix: string, message: string) => `${prefix}: (${interfaceName}) ${new Date().toISOString()} ${message}\n`;
  return {
    verbose: level === 'verbose' ? (message) => write(line('DEBUG', message)) : () => undefined,
    error: level === 'silent' ? () => undefined : (message) => write(line('ERROR', message)),
  };
}

export const silentLogger: Logger = { verbose: () => undefined, error: () => undefined };
