/**
 * `sudo npm run demo`: tswg and wireguard-go talk to each other on this machine.
 *
 * Builds two network namespaces joined by a veth pair, runs tswg in one and
 * the Debian wireguard-go in the other, configures both with wg(8), and shows
 * the handshake, a ping and a short iperf3 throughput figure through the
 * tunnel. Everything it creates is removed on every exit path.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  addressAndUp,
  cleanup,
  createNamespace,
  createTempDir,
  createVethPair,
  execIn,
  randomBenchmarkSubnet30,
  requireCommands,
  requireRoot,
  startIn,
  uniqueName,
  waitUntil,
  writeSecretFile,
} from './lib/netns.js';
import { existsSync } from 'node:fs';

const TSWG = fileURLToPath(new URL('../../bin/tswg', import.meta.url));
const LISTEN_PORT = 51820;
const THROUGHPUT_SECONDS = 3;

function step(message: string): void {
  process.stdout.write(`\n==> ${message}\n`);
}

function show(text: string): void {
  process.stdout.write(text.replace(/^/gm, '    ').trimEnd() + '\n');
}

function keyPair(): { privateKey: string; publicKey: string } {
  const privateKey = execFileSync('wg', ['genkey'], { encoding: 'utf8' }).trim();
  const publicKey = execFileSync('wg', ['pubkey'], { input: privateKey, encoding: 'utf8' }).trim();
  return { privateKey, publicKey };
}

async function main(): Promise<void> {
  requireRoot('the demo');
  requireCommands('ip', 'wg', 'wireguard-go', 'ping', 'iperf3');

  step('creating two network namespaces joined by a veth pair');
  const nsTswg = createNamespace();
  const nsGo = createNamespace();
  const veth = createVethPair(nsGo, { hostNamespace: nsTswg });
  const outer = randomBenchmarkSubnet30();
  addressAndUp(nsTswg, veth.host.name, `${outer.first}/30`);
  addressAndUp(nsGo, veth.peer.name, `${outer.second}/30`);
  show(`${nsTswg} (tswg) ${outer.first}  <->  ${nsGo} (wireguard-go) ${outer.second}`);

  const dir = createTempDir('tswg-demo-');
  const tswgKeys = keyPair();
  const goKeys = keyPair();
  const psk = execFileSync('wg', ['genpsk'], { encoding: 'utf8' }).trim();
  const pskFile = writeSecretFile(dir, 'psk', psk);
  const tswgIf = uniqueName();
  const goIf = uniqueName();

  step(`starting tswg (${tswgIf}) and wireguard-go (${goIf})`);
  const tswg = startIn(nsTswg, TSWG, ['--foreground', tswgIf], { name: 'tswg', env: { ...process.env, LOG_LEVEL: 'error' } });
  const wgGo = startIn(nsGo, 'wireguard-go', ['-f', goIf], { name: 'wireguard-go' });
  await waitUntil(() => existsSync(`/var/run/wireguard/${tswgIf}.sock`) || !tswg.running(), 'the tswg UAPI socket', 10_000);
  if (!tswg.running()) throw new Error(`tswg exited early:\n${tswg.output()}`);
  await waitUntil(() => existsSync(`/var/run/wireguard/${goIf}.sock`), 'the wireguard-go UAPI socket', 10_000);

  step('configuring both ends with wg(8) and ip(8)');
  const configure = (ns: string, ifname: string, own: { privateKey: string }, peerKey: string, peerEndpoint: string, ownInner: string, peerInner: string) => {
    execIn(ns, 'wg', ['set', ifname, 'private-key', writeSecretFile(dir, `${ifname}.key`, own.privateKey), 'listen-port', String(LISTEN_PORT),
      'peer', peerKey, 'preshared-key', pskFile, 'endpoint', `${peerEndpoint}:${LISTEN_PORT}`, 'allowed-ips', `${peerInner}/32`]);
    addressAndUp(ns, ifname, `${ownInner}/24`);
  };
  configure(nsTswg, tswgIf, tswgKeys, goKeys.publicKey, outer.second, '198.19.7.1', '198.19.7.2');
  configure(nsGo, goIf, goKeys, tswgKeys.publicKey, outer.first, '198.19.7.2', '198.19.7.1');
  show(execIn(nsTswg, 'wg', ['show', tswgIf]));

  step('ping through the tunnel (tswg -> wireguard-go); the first packet starts the handshake');
  show(execIn(nsTswg, 'ping', ['-c', '3', '-i', '0.2', '-W', '5', '198.19.7.2']));

  step('handshake as wg(8) sees it on the tswg side');
  show(execIn(nsTswg, 'wg', ['show', tswgIf]));

  step(`iperf3 TCP for ${THROUGHPUT_SECONDS} s through the tunnel (tswg sends)`);
  const server = startIn(nsGo, 'iperf3', ['-s', '-1', '-B', '198.19.7.2'], { name: 'iperf3 server' });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const report = JSON.parse(execIn(nsTswg, 'iperf3', ['-c', '198.19.7.2', '-t', String(THROUGHPUT_SECONDS), '-J'])) as {
    end: { sum_received: { bits_per_second: number } };
  };
  await server.waitForExit(5000).catch(() => server.stop());
  show(`throughput: ${(report.end.sum_received.bits_per_second / 1e6).toFixed(0)} Mbit/s`);

  step('stopping');
  await tswg.stop();
  await wgGo.stop();
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
