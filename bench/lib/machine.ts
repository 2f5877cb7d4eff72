/** The machine and versions line every benchmark report starts with (BENCHMARKS.md quotes it). */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

/** The checkout this file belongs to (works from bench/lib and from dist/bench/lib). */
const CHECKOUT = fileURLToPath(new URL(import.meta.url.includes('/dist/') ? '../../../' : '../../', import.meta.url));

function firstLine(command: string, args: string[], cwd?: string): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], cwd }).split('\n')[0]!.trim();
  } catch {
    return `${command}: not available`;
  }
}

export interface MachineInfo {
  cpus: number;
  kernel: string;
  node: string;
  wireguardGo: string;
  iperf3: string;
  /** The tswg commit measured; "-dirty" when the work tree had uncommitted changes. */
  tswgCommit: string;
}

export function machineInfo(): MachineInfo {
  return {
    cpus: availableParallelism(),
    kernel: firstLine('uname', ['-r']),
    node: process.version,
    wireguardGo: firstLine('wireguard-go', ['--version']),
    iperf3: firstLine('iperf3', ['--version']),
    tswgCommit: firstLine('git', ['describe', '--always', '--dirty', '--abbrev=12'], CHECKOUT),
  };
}

export function machineLine(info: MachineInfo = machineInfo()): string {
  return `tswg ${info.tswgCommit}, ${info.cpus} CPUs (nproc), Linux ${info.kernel}, Node ${info.node}, ${info.wireguardGo}, ${info.iperf3}`;
}
