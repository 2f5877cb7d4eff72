/**
 * `sudo npm run demo:interop`: tswg and wireguard-go talk to each other on this machine.
 *
 * Builds two network namespaces joined by a veth pair, runs tswg in one and
 * the Debian wireguard-go in the other, configures both with wg(8), and shows
 * the handshake, a ping and a short iperf3 throughput figure through the
 * tunnel. Everything it creates is removed on every exit path.
 */
import { cleanup, requireCommands, requireRoot, startIn } from './lib/netns.js';
import { createPair, ping } from './lib/topology.js';

const THROUGHPUT_SECONDS = 3;

function step(message: string): void {
  process.stdout.write(`\n==> ${message}\n`);
}

function show(text: string): void {
  process.stdout.write(`${text.replace(/^/gm, '    ').trimEnd()}\n`);
}

async function main(): Promise<void> {
  requireRoot('the demo');
  requireCommands('ip', 'wg', 'wireguard-go', 'ping', 'iperf3');

  step('two network namespaces joined by a veth pair: tswg in one, wireguard-go in the other, configured with wg(8)');
  const { a: tswg, b: wgGo } = await createPair({ left: 'tswg', right: 'wireguard-go', presharedKey: true });
  show(`${tswg.namespace}: tswg ${tswg.interfaceName} on ${tswg.outer4}, tunnel address ${tswg.inner4}`);
  show(`${wgGo.namespace}: wireguard-go ${wgGo.interfaceName} on ${wgGo.outer4}, tunnel address ${wgGo.inner4}`);
  show(tswg.wg('show', tswg.interfaceName));

  step('ping through the tunnel (tswg -> wireguard-go); the first packet starts the handshake');
  show(ping(tswg, wgGo.inner4));

  step('the handshake as wg(8) sees it on the tswg side');
  show(tswg.wg('show', tswg.interfaceName));

  step(`iperf3 TCP for ${THROUGHPUT_SECONDS} s through the tunnel (tswg sends)`);
  const server = startIn(wgGo.namespace, 'iperf3', ['-s', '-1', '-B', wgGo.inner4], { name: 'iperf3 server' });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const report = JSON.parse(tswg.exec('iperf3', ['-c', wgGo.inner4, '-t', String(THROUGHPUT_SECONDS), '-J'])) as {
    end: { sum_received: { bits_per_second: number } };
  };
  await server.waitForExit(5000).catch(() => server.stop());
  show(`throughput: ${(report.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s`);

  step('stopping');
  await tswg.process.stop();
  await wgGo.process.stop();
}

main()
  .then(() => {
    cleanup();
    process.stdout.write('\ndone: namespaces, processes and keys removed.\n');
  })
  .catch((error: unknown) => {
    cleanup();
    process.stderr.write(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
