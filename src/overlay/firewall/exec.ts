/**
 * Running the firewall tools (nft, iptables*, iptables*-restore): execFile,
 * never a shell, an optional ruleset on stdin, a timeout, and an error that
 * names the command and quotes what the tool said.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { FIREWALL_TOOL_TIMEOUT_MS } from '../constants.js';
import { FirewallError } from './firewall.js';

export interface ToolFailure {
  command: string;
  args: readonly string[];
  code: number | null;
  stderr: string;
}

export class ToolError extends FirewallError {
  constructor(readonly failure: ToolFailure) {
    super(`${failure.command} ${failure.args.join(' ')} failed (exit ${failure.code ?? 'signal'}): ${failure.stderr.trim() || 'no message'}`);
  }
}

/** Run `command args`, feeding `input` on stdin; resolves with stdout. */
export function runTool(command: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: FIREWALL_TOOL_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error === null) {
        resolve(stdout);
        return;
      }
      const code = typeof (error as { code?: unknown }).code === 'number' ? ((error as { code: number }).code) : null;
      reject(new ToolError({ command, args, code, stderr: stderr || error.message }));
    });
    // A tool that exits without reading stdin must not turn into an EPIPE crash.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

/** Whether a tool failed because what it was told to remove is not there (counts as removed). */
export function isMissing(error: unknown): boolean {
  if (!(error instanceof ToolError)) return false;
  return /No such file or directory|does not exist|No chain\/target\/match by that name|Bad rule|not found|doesn't exist/i.test(error.failure.stderr);
}

/** The executable `name` on PATH (plus the sbin directories root's PATH may lack), null when none. */
export function findTool(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const path = join(dir, name);
    try {
      accessSync(path, fsConstants.X_OK);
      return path;
    } catch {
      // Not here.
    }
  }
  return null;
}
