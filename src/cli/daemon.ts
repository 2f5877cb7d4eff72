/**
 * `tswg [-f|--foreground] IFNAME`, started like wireguard-go: create the TUN
 * interface and the UAPI socket, then (unless -f or WG_PROCESS_FOREGROUND=1)
 * return while a detached copy of ourselves serves the interface. The child
 * reports "ready" (or the error) over an extra pipe, so the parent returns
 * only once the interface and socket exist, and with the child's error.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { UdpBindError, Device, UAPI_SOCKET_DIRECTORY, createLogger, parseLogLevel, UapiServer } from '../device/index.js';
import { preparePacketPath } from './packet-path-start.js';
import { LinuxTun } from '../tun/index.js';
import { CliError, UsageError } from './key-commands.js';

/** The child's end of the readiness pipe. */
const READY_FD_ENV = 'TSWG_READY_FD';
const READY_MESSAGE = 'ready';

export interface DaemonArgs {
  interfaceName: string;
  foreground: boolean;
}

export function parseDaemonArgs(argv: string[]): DaemonArgs {
  let foreground = process.env.WG_PROCESS_FOREGROUND === '1';
  const names: string[] = [];
  for (const arg of argv) {
    if (arg === '-f' || arg === '--foreground') foreground = true;
    else if (arg.startsWith('-')) throw new UsageError(`unknown option '${arg}'; run 'tswg --help'`);
    else names.push(arg);
  }
  if (names.length !== 1) throw new UsageError(`expected one interface name, got ${names.length}; run 'tswg --help'`);
  return { interfaceName: names[0]!, foreground };
}

export async function runDaemon(args: DaemonArgs): Promise<number> {
  return args.foreground ? serve(args.interfaceName) : startDetached(args.interfaceName);
}

/** Start a detached foreground copy and wait for its word. */
async function startDetached(interfaceName: string): Promise<number> {
  const logLevel = parseLogLevel(process.env.LOG_LEVEL);
  const showLogs = process.env.LOG_LEVEL !== undefined && logLevel !== 'silent';
  const child = spawn(process.execPath, [process.argv[1]!, '--foreground', interfaceName], {
    detached: true,
    env: { ...process.env, WG_PROCESS_FOREGROUND: '1', [READY_FD_ENV]: '3' },
    stdio: ['ignore', showLogs ? 'inherit' : 'ignore', showLogs ? 'inherit' : 'ignore', 'pipe'],
  });
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  let report = '';
  pipe.on('data', (chunk: Buffer) => (report += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => {
    pipe.on('end', () => resolve(null));
    child.on('exit', (exitCode) => resolve(exitCode ?? 1));
  });
  if (report.trim() === READY_MESSAGE) {
    child.unref();
    return 0;
  }
  throw new CliError(report.trim().replace(/^error: /, '') || `the daemon for '${interfaceName}' exited (code ${code}) before it was ready`);
}

/** Serve the interface in this process until a signal or the interface's deletion. */
async function serve(interfaceName: string): Promise<number> {
  const readyFd = process.env[READY_FD_ENV] === undefined ? null : Number(process.env[READY_FD_ENV]);
  delete process.env[READY_FD_ENV];
  const log = createLogger(parseLogLevel(process.env.LOG_LEVEL), interfaceName);
  // Signals are ours from the first moment: one that arrives while setting up
  // (or a second one while shutting down) must not take Node's default exit,
  // which would skip the cleanup and leave a stale socket.
  let stopRequested: ((reason: string) => void) | null = null;
  let signalledBeforeReady: string | null = null;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopRequested !== null) stopRequested(signal);
      else signalledBeforeReady ??= signal;
    });
  }

  const socketPath = path.join(UAPI_SOCKET_DIRECTORY, `${interfaceName}.sock`);
  let device: Device;
  let uapi: UapiServer;
  try {
    await preparePacketPath(log);
    const tun = LinuxTun.create(interfaceName);
    device = new Device({ tun, log });
    try {
      uapi = await UapiServer.listen(socketPath, device, (message) => log.error(message)).catch((error: NodeJS.ErrnoException) => {
        throw socketError(socketPath, error);
      });
      await device.start();
    } catch (error) {
      await device.close();
      throw error;
    }
  } catch (error) {
    const message = (error as Error).message;
    if (readyFd !== null) report(readyFd, `error: ${message}`);
    throw new CliError(message);
  }
  log.verbose(`interface ${interfaceName} is up; UAPI at ${uapi.path}`);
  if (readyFd !== null) report(readyFd, READY_MESSAGE);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (reason: string, code = 0) => {
      if (stopping) return;
      stopping = true;
      if (code === 0) log.verbose(`shutting down: ${reason}`);
      else log.error(`shutting down: ${reason}`);
      void Promise.allSettled([device.close(), uapi.close()]).then(() => resolve(code));
    };
    stopRequested = stop;
    // A deleted interface is the documented way to stop (exit 0); a dead UDP port is a failure (exit 1).
    device.onClose((error) => stop(error === null ? 'device closed' : error.message, error instanceof UdpBindError ? 1 : 0));
    if (signalledBeforeReady !== null) stop(signalledBeforeReady);
  });
}

/** A UAPI socket failure phrased so a person knows what to fix. */
function socketError(socketPath: string, error: NodeJS.ErrnoException): Error {
  const directory = path.dirname(socketPath);
  switch (error.code) {
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new Error(`cannot create the UAPI socket ${socketPath}: ${error.code} (is ${directory} writable?)`);
    default:
      return error;
  }
}

function report(fd: number, message: string): void {
  try {
    fs.writeSync(fd, `${message}\n`);
    fs.closeSync(fd);
  } catch {
    // The parent is gone; nothing to tell.
  }
}
