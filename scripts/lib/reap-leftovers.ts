/**
 * Removes the namespaces and links a killed run left behind. A run removes
 * what it made itself (cleanup(), also on SIGINT/SIGTERM/SIGHUP), but SIGKILL,
 * a CI timeout or an ended session gives it no chance, and the names stay.
 * Every name uniqueName() makes carries the pid of the process that made it
 * (`<prefix><pid base36>[.<thread id base36>]-<n base36>`), so a name whose
 * process no longer exists is a leftover.
 *
 * Nothing is killed: a name whose process is alive, or that does not parse,
 * is never touched; a process still running inside a removed namespace keeps
 * it (nameless) until it exits.
 */
import { listNamespaces, run } from './netns.js';

/** Linux's PID_MAX_LIMIT: a larger number is not a pid, so the name is not ours. */
const PID_MAX_LIMIT = 4_194_304;
const NAME_AFTER_PREFIX = /^([0-9a-z]+)(?:\.[0-9a-z]+)?-[0-9a-z]+$/;

export interface ReapReport {
  /** `namespace NAME` / `link NAME`, in the order they were removed. */
  removed: string[];
  /** One line per leftover that could not be removed, with the reason. */
  failed: string[];
}

/** The pid in a name made with `prefix`, or null when the name is not one of them. */
export function pidInName(name: string, prefix: string): number | null {
  if (!name.startsWith(prefix)) return null;
  const digits = NAME_AFTER_PREFIX.exec(name.slice(prefix.length))?.[1];
  if (digits === undefined) return null;
  const pid = Number.parseInt(digits, 36);
  return Number.isSafeInteger(pid) && pid >= 1 && pid <= PID_MAX_LIMIT ? pid : null;
}

/** False only when the kernel says no such process (ESRCH); EPERM and the rest mean it may well exist. */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Links of the current namespace by name (a veth shows as `name@peer`; the part before `@` is its name). */
export function listLinks(): string[] {
  return run('ip', ['-o', 'link', 'show'])
    .split('\n')
    .map((line) => /^\d+:\s+([^:@\s]+)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined);
}

/** Whether the link is still there; when that cannot be told, assume it is (so a failure is reported, not hidden). */
function linkPresent(name: string): boolean {
  try {
    return listLinks().includes(name);
  } catch {
    return true;
  }
}

function isLeftover(name: string, prefix: string): boolean {
  const pid = pidInName(name, prefix);
  return pid !== null && !processExists(pid);
}

function reason(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n').join('; ');
}

/**
 * Remove every namespace, then every link of the current namespace, named
 * with `prefix` by a process that is gone. Logs one line per removal or
 * failure; never throws (a run must start even when a leftover resists).
 */
export function reapLeftovers(prefix: string, log: (line: string) => void = console.log): ReapReport {
  const report: ReapReport = { removed: [], failed: [] };
  const note = (kind: string, name: string, error?: unknown): void => {
    const pid = pidInName(name, prefix);
    if (error === undefined) {
      report.removed.push(`${kind} ${name}`);
      log(`removed leftover ${kind} ${name} (its process ${pid} is gone)`);
    } else {
      report.failed.push(`${kind} ${name}: ${reason(error)}`);
      log(`could not remove leftover ${kind} ${name}: ${reason(error)}`);
    }
  };

  let namespaces: string[];
  try {
    namespaces = listNamespaces();
  } catch (error) {
    report.failed.push(`listing namespaces: ${reason(error)}`);
    log(`could not list namespaces to remove leftovers: ${reason(error)}`);
    return report;
  }
  for (const name of namespaces.filter((name) => isLeftover(name, prefix))) {
    try {
      run('ip', ['netns', 'delete', name]);
      note('namespace', name);
    } catch (error) {
      note('namespace', name, error);
    }
  }

  // Listed after the namespaces went: a veth whose other end was in one of them may have gone with it.
  let links: string[];
  try {
    links = listLinks();
  } catch (error) {
    report.failed.push(`listing links: ${reason(error)}`);
    log(`could not list links to remove leftovers: ${reason(error)}`);
    return report;
  }
  for (const name of links.filter((name) => isLeftover(name, prefix))) {
    try {
      // Deleting one end of a veth deletes the other: skip what an earlier deletion took along.
      if (!linkPresent(name)) continue;
      run('ip', ['link', 'delete', 'dev', name]);
      note('link', name);
    } catch (error) {
      if (!linkPresent(name)) continue;
      note('link', name, error);
    }
  }
  return report;
}
