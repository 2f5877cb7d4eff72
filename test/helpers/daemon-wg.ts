/**
 * Parsing and normalising `wg show IFNAME dump` for the stock-tool tests:
 * compare two devices (tswg and wireguard-go, or a device and its copy made
 * with `wg setconf`) on their configuration, leaving out what legitimately
 * differs (handshake times, transfer counters, optionally the listen port).
 */

export interface DumpPeer {
  publicKey: string;
  presharedKey: string;
  endpoint: string;
  /** As wg printed them, in order. */
  allowedIps: string[];
  latestHandshake: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: string;
}

export interface Dump {
  privateKey: string;
  publicKey: string;
  listenPort: string;
  fwmark: string;
  peers: DumpPeer[];
}

/** Parse `wg show IFNAME dump` (one interface: no interface column). */
export function parseDump(text: string): Dump {
  const lines = text.split('\n').filter((line) => line !== '');
  const head = lines.shift()?.split('\t');
  if (head === undefined || head.length !== 4) throw new Error(`not an interface line in wg dump:\n${text}`);
  const [privateKey, publicKey, listenPort, fwmark] = head as [string, string, string, string];
  const peers = lines.map((line): DumpPeer => {
    const fields = line.split('\t');
    if (fields.length !== 8) throw new Error(`not a peer line in wg dump: ${JSON.stringify(line)}`);
    const [key, psk, endpoint, ips, handshake, rx, tx, keepalive] = fields as [string, string, string, string, string, string, string, string];
    return {
      publicKey: key,
      presharedKey: psk,
      endpoint,
      allowedIps: ips === '(none)' ? [] : ips.split(','),
      latestHandshake: Number(handshake),
      rxBytes: Number(rx),
      txBytes: Number(tx),
      persistentKeepalive: keepalive,
    };
  });
  return { privateKey, publicKey, listenPort, fwmark, peers };
}

export interface NormaliseOptions {
  /** Leave the listen port out (two devices in one namespace, or port 0 = random). */
  ignorePort?: boolean;
  /** Compare allowed IPs as a set (sorted) rather than in the order wg printed them. */
  sortAllowedIps?: boolean;
}

/**
 * The configuration part of a dump as stable text: peers sorted by public key
 * (wireguard-go lists them in Go map order), handshake and transfer left out.
 */
export function configOf(dump: Dump, options: NormaliseOptions = {}): string {
  const lines = [`interface private=${dump.privateKey} public=${dump.publicKey} port=${options.ignorePort ? '*' : dump.listenPort} fwmark=${dump.fwmark}`];
  const peers = [...dump.peers].sort((a, b) => (a.publicKey < b.publicKey ? -1 : a.publicKey > b.publicKey ? 1 : 0));
  for (const peer of peers) {
    const ips = options.sortAllowedIps ? [...peer.allowedIps].sort() : peer.allowedIps;
    lines.push(`peer ${peer.publicKey} psk=${peer.presharedKey} endpoint=${peer.endpoint} allowed=${ips.join(',') || '(none)'} keepalive=${peer.persistentKeepalive}`);
  }
  return lines.join('\n');
}

/**
 * `wg showconf` output with its [Peer] sections sorted by public key, and the
 * allowed IPs of each sorted when asked: comparable between implementations.
 */
export function normaliseShowconf(text: string, options: NormaliseOptions = {}): string {
  const sections = text
    .trim()
    .split(/\n\s*\n/)
    .map((section) => section.trim());
  const [iface, ...peers] = sections;
  const fix = (section: string): string =>
    section
      .split('\n')
      .map((line) => {
        if (options.ignorePort && /^ListenPort\s*=/.test(line)) return 'ListenPort = *';
        const match = /^AllowedIPs\s*=\s*(.*)$/.exec(line);
        if (match === null || !options.sortAllowedIps) return line;
        return `AllowedIPs = ${match[1]!.split(/\s*,\s*/).sort().join(', ')}`;
      })
      .join('\n');
  return [fix(iface ?? ''), ...peers.map(fix).sort()].join('\n\n');
}

/** Drop the [Peer] section of `publicKey` from a wg config text. */
export function withoutPeer(config: string, publicKey: string): string {
  return config
    .trim()
    .split(/\n\s*\n/)
    .filter((section) => !section.includes(`PublicKey = ${publicKey}`))
    .join('\n\n')
    .concat('\n');
}
