/**
 * The reaper against real namespaces and veth pairs: names made as a process
 * that is gone would make them go; names of a live process, names that do
 * not parse and names of another tool stay.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, listNamespaces, NAME_PREFIX, registerCleanup, requireCommands, requireRoot, run } from '../../scripts/lib/netns.js';
import { listLinks, pidInName, processExists, reapLeftovers } from '../../scripts/lib/reap-leftovers.js';

/** The pid of a process that has run and been waited for: no such process any more. */
function deadPid(): number {
  for (let attempt = 0; attempt < 10; attempt++) {
    const pid = spawnSync('true').pid;
    if (pid !== undefined && !processExists(pid)) return pid;
  }
  throw new Error('could not find a pid that is not alive');
}

function addNamespace(name: string): void {
  run('ip', ['netns', 'add', name]);
  registerCleanup('namespace', `delete namespace ${name}`, () => {
    if (listNamespaces().includes(name)) run('ip', ['netns', 'delete', name]);
  });
}

/** A veth pair with both ends here, in the test's own namespace. */
function addVeth(name: string, peer: string): void {
  run('ip', ['link', 'add', name, 'type', 'veth', 'peer', 'name', peer]);
  registerCleanup('link', `delete veth ${name}`, () => {
    if (listLinks().includes(name)) run('ip', ['link', 'delete', 'dev', name]);
  });
}

/** A namespace and a veth pair named `<prefix><pid part>-reap`/`-reaq`. */
function leftoverSet(prefix: string, pidPart: string): { namespace: string; link: string; peer: string } {
  const set = { namespace: `${prefix}${pidPart}-reap`, link: `${prefix}${pidPart}-reap`, peer: `${prefix}${pidPart}-reaq` };
  addNamespace(set.namespace);
  addVeth(set.link, set.peer);
  return set;
}

describe('pidInName', () => {
  it('reads the pid of the names uniqueName makes, with and without a thread id', () => {
    expect(pidInName('tswgt-o25-1', 'tswgt-')).toBe(31181);
    expect(pidInName('tswgt-o25.3-1a', 'tswgt-')).toBe(31181);
    expect(pidInName('bench-e86-7', 'bench-')).toBe(18438);
  });

  it('gives null for names it did not make, so they are never touched', () => {
    for (const name of ['tswgt-reap', 'tswgt-0123456789', 'tswgt-o25', 'tswgt-o25-', 'tswgt-O25-1', 'tswgt-o25_1-1', 'tswgt-0-1', 'tswgt-zzzzz-1', 'zl-o25-1', 'bench-e86-7']) {
      expect(pidInName(name, 'tswgt-'), name).toBeNull();
    }
  });
});

describe('reapLeftovers', () => {
  let dead: ReturnType<typeof leftoverSet>;
  let live: ReturnType<typeof leftoverSet>;
  let unparsable: ReturnType<typeof leftoverSet>;
  let otherTool: ReturnType<typeof leftoverSet>;
  let deadPidNumber: number;

  beforeAll(() => {
    requireRoot('the leftover reaper test');
    requireCommands('ip');
    deadPidNumber = deadPid();
    const deadPart = deadPidNumber.toString(36);
    dead = leftoverSet(NAME_PREFIX, deadPart);
    live = leftoverSet(NAME_PREFIX, process.pid.toString(36));
    // `tswgt-` followed by no `<pid>-<n>`: made by someone else, whatever its pid.
    unparsable = { namespace: `${NAME_PREFIX}reap`, link: `${NAME_PREFIX}reap`, peer: `${NAME_PREFIX}reaq` };
    addNamespace(unparsable.namespace);
    addVeth(unparsable.link, unparsable.peer);
    // Another tool's prefix with a dead pid's shape.
    otherTool = leftoverSet('zl-', deadPart);
  });

  afterAll(() => cleanup());

  it('removes what a process that is gone left, and only that', () => {
    expect(processExists(process.pid)).toBe(true);
    expect(processExists(deadPidNumber)).toBe(false);
    const lines: string[] = [];
    const report = reapLeftovers(NAME_PREFIX, (line) => lines.push(line));

    const namespaces = listNamespaces();
    const links = listLinks();
    expect(namespaces).not.toContain(dead.namespace);
    expect(links).not.toContain(dead.link);
    expect(links).not.toContain(dead.peer);
    for (const kept of [live, unparsable, otherTool]) {
      expect(namespaces).toContain(kept.namespace);
      expect(links).toContain(kept.link);
      expect(links).toContain(kept.peer);
    }

    expect(report.failed).toEqual([]);
    expect(report.removed).toContain(`namespace ${dead.namespace}`);
    // One end of the veth is deleted, and the other goes with it.
    expect(report.removed.filter((thing) => thing === `link ${dead.link}` || thing === `link ${dead.peer}`)).toHaveLength(1);
    // Leftovers of other killed runs may go too, but never a name whose process lives.
    for (const thing of report.removed) {
      const pid = pidInName(thing.split(' ')[1]!, NAME_PREFIX);
      expect(pid, thing).not.toBeNull();
      expect(processExists(pid!), thing).toBe(false);
    }
    expect(lines).toHaveLength(report.removed.length);
    expect(lines.find((line) => line.includes(`namespace ${dead.namespace}`))).toContain(`process ${deadPidNumber} is gone`);
  });

  it('finds nothing more on a second pass', () => {
    const lines: string[] = [];
    const report = reapLeftovers(NAME_PREFIX, (line) => lines.push(line));
    expect(report.removed.filter((thing) => thing.includes('-rea'))).toEqual([]);
    expect(listNamespaces()).toContain(live.namespace);
  });

  it('never touches the names of another tool, whatever their shape', () => {
    reapLeftovers(NAME_PREFIX, () => undefined);
    expect(listNamespaces()).toContain(otherTool.namespace);
    expect(listLinks()).toEqual(expect.arrayContaining([otherTool.link, otherTool.peer]));
  });
});
