/** The machine line every benchmark report starts with (BENCHMARKS.md quotes it). */
import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

function firstLine(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!.trim();
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
}

export function machineInfo(): MachineInfo {
  return {
    cpus: availableParallelism(),
    kernel: firstLine('uname', ['-r']),
    node: process.version,
    wireguardGo: firstLine('wireguard-go', ['--version']),
    iperf3: firstLine('iperf3', ['--version']),
  };
}

export function machineLine(info: MachineInfo = machineInfo()): string {
  return `${info.cpus} CPUs (nproc), Linux ${info.kernel}, Node ${info.node}, ${info.wireguardGo}, ${info.iperf3}`;
}
