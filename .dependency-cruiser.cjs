/**
 * The walls between the rooms of src/, enforced by `npm run lint`
 * (dependency-cruiser). ARCHITECTURE.md states them; test/architecture.test.ts
 * holds this file, that table and the code together.
 */

/** Each room and the rooms it may import (through their index.ts). */
const MAY_IMPORT = {
  noise: [],
  platform: [],
  tun: ['platform'],
  device: ['noise', 'platform', 'tun'],
  nat: ['noise', 'platform', 'device'],
  overlay: ['noise', 'platform', 'tun', 'device', 'nat'],
  cli: ['noise', 'platform', 'tun', 'device', 'nat', 'overlay'],
};
const ROOMS = Object.keys(MAY_IMPORT);

/** Node modules that do I/O, and koffi (system calls): the protocol core uses none of them. */
const IO_MODULES = ['fs', 'net', 'dgram', 'child_process', 'worker_threads', 'http', 'https', 'os', 'tty'];

/**
 * Files a worker thread loads that reach into another room: they import the
 * file they need, not the room's index, so a worker does not load a whole
 * room at start-up.
 */
const WORKER_SIDE = ['src/device/crypto-worker.ts', 'src/device/crypto-jobs.ts'];

/**
 * Indexes a room offers besides its index.ts: the platform's configuration of
 * the kernel's network, which the WireGuard daemon does not load.
 */
const SECOND_INDEXES = ['src/platform/network-config.ts'];

const escape = (path) => path.replace(/[.]/g, '\\.');

const roomRules = ROOMS.filter((room) => room !== 'cli').map((room) => {
  const forbidden = ROOMS.filter((other) => other !== room && !MAY_IMPORT[room].includes(other));
  return {
    name: `${room}-imports-only-${MAY_IMPORT[room].length === 0 ? 'itself' : MAY_IMPORT[room].join('-')}`,
    comment: `src/${room} may import ${MAY_IMPORT[room].length === 0 ? 'nothing of another room' : MAY_IMPORT[room].map((r) => `src/${r}`).join(', ')} (ARCHITECTURE.md)`,
    severity: 'error',
    from: { path: `^src/${room}/` },
    to: { path: `^src/(${forbidden.join('|')})/` },
  };
});

module.exports = {
  forbidden: [
    {
      name: 'noise-does-no-io',
      comment: 'the protocol core does no I/O: no files, sockets, processes, threads, terminals or system calls',
      severity: 'error',
      from: { path: '^src/noise/' },
      to: { path: [`^(node:)?(${IO_MODULES.join('|')})(/|$)`, '(^|/)node_modules/koffi/', '^koffi$'] },
    },
    ...roomRules,
    {
      name: 'through-the-index',
      comment: "a room imports another room's index.ts (or the platform's second index, network-config.ts), never one of its files",
      severity: 'error',
      from: { path: `^src/(${ROOMS.join('|')})/`, pathNot: WORKER_SIDE.map((file) => `^${escape(file)}$`) },
      to: { path: `^src/(${ROOMS.join('|')})/`, pathNot: ['^src/$1/', `^src/(${ROOMS.join('|')})/index\\.ts$`, ...SECOND_INDEXES.map((file) => `^${escape(file)}$`)] },
    },
    {
      name: 'no-cycles',
      comment: 'no import cycle that loads at run time (ES modules load in import order: a cycle can see a binding before it is set)',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'resolvable',
      comment: 'every import resolves (an unresolved one would slip past every other rule)',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
