/**
 * Where a running tswg daemon's memory goes: samples /proc/PID/smaps of every
 * process whose command line contains --match (default: this checkout's
 * bin/tswg) and, for each, keeps the sample taken at its highest RSS. Prints
 * that moment's smaps_rollup figures and its largest mappings, each named by
 * what it most likely is: a packet ring's slots (a mapping the size of a
 * ring, read from the ring's constants), a thread stack, the malloc heap, a
 * file, or other anonymous memory (the V8 heaps, most of it).
 *
 * Run it beside a load, e.g. in one shell
 *   node dist/bench/memory-map.js --duration-s 40
 * and in another
 *   node dist/bench/e2e.js --only tswg-tswg --test tcp --mtu 9000 --rounds 1
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseBenchArgs } from './lib/command-line.js';
import { machineLine } from './lib/machine.js';
import { RING_SLOTS, slotSizeFor } from '../src/platform/packet-ring.js';
import { TUN_SLOT_LAYOUT, UDP_RING_SLOTS, UDP_SLOT_LAYOUT } from '../src/device/constants.js';

const PAGE = 4096;
const KIB = 1024;
const TOP_MAPPINGS = 12;
/** The UDP receive ring, now and as it was (the ring's default size), to read a build from before either. */
const UDP_RING_SLOT_COUNTS = [UDP_RING_SLOTS, RING_SLOTS];
/** The TUN driver's rings (src/tun/linux.ts): with offloads 128 slots and 65 spare, without 512 and 1. */
const TUN_RING_SLOTS = [128 + 64 + 1, RING_SLOTS + 1];

interface Mapping {
  name: string;
  sizeKib: number;
  rssKib: number;
}

interface Sample {
  rssKib: number;
  rollup: string;
  mappings: Mapping[];
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function parseSmaps(text: string): Mapping[] {
  const mappings: Mapping[] = [];
  let current: Mapping | null = null;
  for (const line of text.split('\n')) {
    const header = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header !== null) {
      current = { name: header[3]!, sizeKib: (parseInt(header[2]!, 16) - parseInt(header[1]!, 16)) / KIB, rssKib: 0 };
      mappings.push(current);
      continue;
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss !== null && current !== null) current.rssKib = Number(rss[1]);
  }
  return mappings;
}

/** What a mapping of this size most likely is. */
function kindOf(mapping: Mapping): string {
  if (mapping.name !== '') return mapping.name.startsWith('/') ? `file ${mapping.name.split('/').pop()}` : mapping.name;
  const bytes = mapping.sizeKib * KIB;
  const near = (expected: number) => bytes >= expected && bytes <= expected + 2 * PAGE;
  for (const slots of UDP_RING_SLOT_COUNTS) if (near(slots * slotSizeFor(UDP_SLOT_LAYOUT))) return `UDP packet ring slots (${slots} × ${slotSizeFor(UDP_SLOT_LAYOUT)} B)`;
  for (const slots of TUN_RING_SLOTS) if (near(slots * slotSizeFor(TUN_SLOT_LAYOUT))) return `TUN packet ring slots (${slots} × ${slotSizeFor(TUN_SLOT_LAYOUT)} B)`;
  if (mapping.sizeKib === 8192 || mapping.sizeKib === 8188) return 'thread stack (8 MiB reserved)';
  return 'anonymous (V8 heaps, other allocations)';
}

function daemonPids(match: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== process.pid)
    .filter((entry) => (read(`/proc/${entry}/cmdline`) ?? '').replace(/\0/g, ' ').includes(match))
    .map(Number);
}

async function main(): Promise<void> {
  const { values } = parseBenchArgs({
    measures: "each tswg daemon's memory mappings at its highest sampled RSS, while something else (bench:e2e) loads it",
    options: {
      match: { type: 'string', value: 'TEXT', default: fileURLToPath(new URL('../../bin/tswg', import.meta.url)), description: 'sample the processes whose command line contains this' },
      'interval-ms': { type: 'string', value: 'MS', default: '200', description: 'time between samples' },
      'duration-s': { type: 'string', value: 'S', default: '60', description: 'how long to sample' },
    },
  });
  const intervalMs = Number(values['interval-ms']);
  const until = Date.now() + Number(values['duration-s']) * 1000;
  const peaks = new Map<number, Sample>();
  const commands = new Map<number, string>();
  while (Date.now() < until) {
    for (const pid of daemonPids(values.match!)) {
      const rollup = read(`/proc/${pid}/smaps_rollup`);
      const smaps = read(`/proc/${pid}/smaps`);
      if (rollup === null || smaps === null) continue;
      const rssKib = Number(/^Rss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0);
      if (!commands.has(pid)) commands.set(pid, (read(`/proc/${pid}/cmdline`) ?? '').replace(/\0/g, ' ').trim());
      if (rssKib > (peaks.get(pid)?.rssKib ?? -1)) peaks.set(pid, { rssKib, rollup, mappings: parseSmaps(smaps) });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  process.stdout.write(`${machineLine()}\n`);
  for (const [pid, peak] of peaks) {
    process.stdout.write(`\nPID ${pid} (${commands.get(pid)}): highest sampled RSS ${(peak.rssKib / KIB).toFixed(1)} MiB\n`);
    const fields = ['Rss', 'Pss_Anon', 'Pss_File', 'Pss_Shmem', 'Anonymous'].map((field) => `${field} ${(Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(peak.rollup)?.[1] ?? 0) / KIB).toFixed(1)} MiB`);
    process.stdout.write(`  ${fields.join(', ')}\n`);
    const byKind = new Map<string, number>();
    for (const mapping of peak.mappings) byKind.set(kindOf(mapping), (byKind.get(kindOf(mapping)) ?? 0) + mapping.rssKib);
    for (const [kind, rssKib] of [...byKind].sort((a, b) => b[1] - a[1]).slice(0, TOP_MAPPINGS)) process.stdout.write(`  ${(rssKib / KIB).toFixed(1).padStart(7)} MiB  ${kind}\n`);
    process.stdout.write('  largest mappings (RSS / size):\n');
    for (const mapping of [...peak.mappings].sort((a, b) => b.rssKib - a.rssKib).slice(0, TOP_MAPPINGS)) {
      process.stdout.write(`  ${(mapping.rssKib / KIB).toFixed(1).padStart(7)} / ${(mapping.sizeKib / KIB).toFixed(1).padStart(7)} MiB  ${kindOf(mapping)}\n`);
    }
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench memory-map: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
