/**
 * A device closed while the I/O thread reads its packet sources (the reader
 * following the load moved them there under a flood) leaves nothing that
 * keeps the process alive: a real TUN device and its UDP sockets in a
 * namespace, a flood of datagrams at the UDP port from another process, the
 * device closed mid-flood, and the script simply ends; the process must exit
 * by itself, with no thread, handle or timer left behind.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanup, createNamespace, createTempDir, requireCommands, requireRoot, startIn, waitUntil } from '../../scripts/lib/netns.js';
import { requireFreshDist } from '../helpers/fresh-dist.js';

const dist = new URL('../../dist/src/', import.meta.url).pathname;
/** How long the process may take to end once the device is closed (a loaded machine's slack). */
const EXIT_WITHIN_MS = 10_000;

/** The process under test: opens the device, floods it until the I/O thread reads, closes it mid-flood, ends. */
const script = `
import { spawn } from 'node:child_process';
import { Device, silentLogger } from '${dist}device/index.js';
import { LinuxTun } from '${dist}tun/index.js';
import { adaptiveReaders } from '${dist}platform/adaptive-source.js';

const tun = LinuxTun.create('tswgclose0');
const device = new Device({ tun, log: silentLogger });
await device.start();
// python3's tight sendto loop outpaces a node sender several times over on a loaded machine.
const flooder = spawn('python3', ['-c', \`import socket\\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\\nwhile True:\\n    s.sendto(bytes(148), ('127.0.0.1', \${device.listenPort}))\`], { stdio: 'ignore' });
const deadline = Date.now() + 30_000;
while (adaptiveReaders().place !== 'I/O thread') {
  if (Date.now() > deadline) { console.log('never moved'); flooder.kill('SIGKILL'); process.exit(3); }
  await new Promise((resolve) => setTimeout(resolve, 5));
}
console.log('on the I/O thread');
await device.close();
console.log(\`closed: \${JSON.stringify(adaptiveReaders())}\`);
flooder.kill('SIGKILL');
flooder.unref();
`;

describe('a device closed while the I/O thread reads its sources', () => {
  let namespace = '';
  beforeAll(() => {
    requireRoot('test/device/close-while-io-thread-reads.test.ts (a TUN device in a namespace)');
    requireCommands('python3');
    requireFreshDist(['device/device', 'tun/linux', 'platform/adaptive-source', 'platform/io-thread']);
    namespace = createNamespace();
  });
  afterAll(() => cleanup());

  it('leaves nothing running: the process exits by itself, code 0', async () => {
    const file = join(createTempDir(), 'close-mid-flood.mjs');
    writeFileSync(file, script);
    const child = startIn(namespace, process.execPath, [file], { name: 'device closed mid-flood', env: { ...process.env, TSWG_MAIN_POLL: '' } });
    await waitUntil(() => !child.running() || child.output().includes('closed:'), 'the device closed mid-flood', 40_000, 20);
    const status = await child.waitForExit(EXIT_WITHIN_MS);
    const output = child.output();
    expect(output).toContain('on the I/O thread');
    expect(output).toContain('closed: {"place":"main thread","moves":1,"sources":0}');
    expect(status, output).toEqual({ code: 0, signal: null });
  });
});
