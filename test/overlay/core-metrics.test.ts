/**
 * Metrics: the page is parsed back with a small checker of the Prometheus
 * text format 0.0.4 (HELP/TYPE before samples, one TYPE per family, metric
 * and label name syntax, quoted and escaped label values, numeric values),
 * and carries prometheus_wireguard_exporter's names, types and labels.
 */
import { describe, expect, it } from 'vitest';
import { escapeLabelValue, METRICS_CONTENT_TYPE, renderMetrics } from '../../src/overlay/metrics.js';
import type { PeerStatusView } from '../../src/overlay/status.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface ParsedFamily {
  help?: string;
  type?: string;
  samples: Sample[];
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** A strict reader of the text format; throws on anything malformed. */
function parseExposition(text: string): Map<string, ParsedFamily> {
  if (!text.endsWith('\n')) throw new Error('the page must end with a newline');
  const families = new Map<string, ParsedFamily>();
  const family = (name: string) => {
    let f = families.get(name);
    if (f === undefined) families.set(name, (f = { samples: [] }));
    return f;
  };
  for (const line of text.slice(0, -1).split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
      const rest = line.slice(7);
      const space = rest.indexOf(' ');
      const name = rest.slice(0, space);
      const value = rest.slice(space + 1);
      if (!METRIC_NAME.test(name)) throw new Error(`bad metric name in ${line}`);
      const f = family(name);
      if (f.samples.length > 0) throw new Error(`${line}: HELP/TYPE after samples`);
      if (line.startsWith('# HELP ')) {
        if (f.help !== undefined) throw new Error(`second HELP for ${name}`);
        if (/\\[^\\n]/.test(value.replace(/\\\\/g, ''))) throw new Error(`bad escape in HELP ${line}`);
        f.help = value.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      } else {
        if (f.type !== undefined) throw new Error(`second TYPE for ${name}`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(value)) throw new Error(`bad type ${value}`);
        f.type = value;
      }
      continue;
    }
    if (line.startsWith('#') || line === '') continue;
    // name{label="value",...} value
    let i = 0;
    while (i < line.length && /[a-zA-Z0-9_:]/.test(line[i]!)) i++;
    const name = line.slice(0, i);
    if (!METRIC_NAME.test(name)) throw new Error(`bad sample name in ${line}`);
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      while (line[i] !== '}') {
        const eq = line.indexOf('=', i);
        const labelName = line.slice(i, eq);
        if (!LABEL_NAME.test(labelName)) throw new Error(`bad label name ${labelName} in ${line}`);
        if (line[eq + 1] !== '"') throw new Error(`unquoted label value in ${line}`);
        let j = eq + 2;
        let value = '';
        for (;;) {
          const c = line[j];
          if (c === undefined) throw new Error(`unterminated label value in ${line}`);
          if (c === '"') break;
          if (c === '\\') {
            const next = line[j + 1];
            if (next === 'n') value += '\n';
            else if (next === '\\' || next === '"') value += next;
            else throw new Error(`bad escape \\${next} in ${line}`);
            j += 2;
            continue;
          }
          value += c;
          j++;
        }
        if (labelName in labels) throw new Error(`duplicate label ${labelName}`);
        labels[labelName] = value;
        i = j + 1;
        if (line[i] === ',') i++;
        else if (line[i] !== '}') throw new Error(`expected , or } in ${line}`);
      }
      i++;
    }
    if (line[i] !== ' ') throw new Error(`expected a space before the value in ${line}`);
    const valueText = line.slice(i + 1);
    if (!/^(-?\d+(\.\d+)?(e[+-]?\d+)?|NaN|[+-]Inf)$/.test(valueText)) throw new Error(`bad value ${valueText}`);
    const f = families.get(name);
    if (f === undefined || f.type === undefined) throw new Error(`sample ${name} without TYPE`);
    f.samples.push({ name, labels, value: Number(valueText.replace('+Inf', 'Infinity').replace('-Inf', '-Infinity')) });
  }
  return families;
}

const KEY_A = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';
const KEY_B = 'HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=';
const PEERS: PeerStatusView[] = [
  { publicKey: KEY_A, endpoint: '192.0.2.1:51820', allowedIps: ['10.70.0.2/32', '10.70.0.66/32'], latestHandshake: 1_562_834_127, rxBytes: 71_420_072, txBytes: 3_208_804, connectionType: 'hole-punched' },
  { publicKey: KEY_B, endpoint: null, allowedIps: [], latestHandshake: 0, rxBytes: 0, txBytes: 0 },
];

describe('renderMetrics', () => {
  it('the resolver counters: one tswg_dns_queries_total sample per result', () => {
    const families = parseExposition(renderMetrics('wg0', [], true, { answered: 5, forwarded: 3, refused: 1, malformed: 10_000 }));
    const dns = families.get('tswg_dns_queries_total')!;
    expect(dns.type).toBe('counter');
    expect(dns.samples).toEqual([
      { name: 'tswg_dns_queries_total', labels: { result: 'answered' }, value: 5 },
      { name: 'tswg_dns_queries_total', labels: { result: 'forwarded' }, value: 3 },
      { name: 'tswg_dns_queries_total', labels: { result: 'refused' }, value: 1 },
      { name: 'tswg_dns_queries_total', labels: { result: 'malformed' }, value: 10_000 },
    ]);
  });

  it('is valid exposition text with the exporter names, types and labels', () => {
    const page = renderMetrics('wg0', PEERS);
    const families = parseExposition(page);
    expect([...families.keys()]).toEqual(['wireguard_sent_bytes_total', 'wireguard_received_bytes_total', 'wireguard_latest_handshake_seconds', 'tswg_peer_connection_type', 'tswg_node_up']);
    expect(families.get('wireguard_sent_bytes_total')).toMatchObject({ type: 'counter', help: 'Bytes sent to the peer' });
    expect(families.get('wireguard_received_bytes_total')).toMatchObject({ type: 'counter', help: 'Bytes received from the peer' });
    expect(families.get('wireguard_latest_handshake_seconds')).toMatchObject({ type: 'gauge', help: 'Seconds from the last handshake' });
    expect(families.get('tswg_peer_connection_type')!.type).toBe('gauge');
    const base = { interface: 'wg0', public_key: KEY_A, allowed_ips: '10.70.0.2/32,10.70.0.66/32' };
    expect(families.get('wireguard_sent_bytes_total')!.samples[0]).toEqual({ name: 'wireguard_sent_bytes_total', labels: base, value: 3_208_804 });
    expect(families.get('wireguard_received_bytes_total')!.samples[0]!.value).toBe(71_420_072);
    expect(families.get('wireguard_latest_handshake_seconds')!.samples.map((s) => s.value)).toEqual([1_562_834_127, 0]);
    expect(families.get('wireguard_sent_bytes_total')!.samples[1]!.labels).toEqual({ interface: 'wg0', public_key: KEY_B, allowed_ips: '' });
    expect(families.get('tswg_peer_connection_type')!.samples).toEqual([
      { name: 'tswg_peer_connection_type', labels: { interface: 'wg0', public_key: KEY_A, type: 'hole-punched' }, value: 1 },
    ]);
    // The exact line form of the exporter's README, label order included.
    expect(page).toContain(`wireguard_sent_bytes_total{interface="wg0",public_key="${KEY_A}",allowed_ips="10.70.0.2/32,10.70.0.66/32"} 3208804\n`);
  });

  it('escapes ", \\ and newline in label values so the page still parses', () => {
    const nasty = 'a"b\\c\nd';
    const page = renderMetrics(nasty, [{ ...PEERS[0]!, connectionType: `x"\n\\` }]);
    const families = parseExposition(page);
    expect(families.get('wireguard_sent_bytes_total')!.samples[0]!.labels.interface).toBe(nasty);
    expect(families.get('tswg_peer_connection_type')!.samples[0]!.labels.type).toBe(`x"\n\\`);
    expect(escapeLabelValue(nasty)).toBe('a\\"b\\\\c\\nd');
    expect(page.split('\n').every((line) => line === '' || line.startsWith('#') || /^[a-z_]+\{/.test(line) || line === 'tswg_node_up 1')).toBe(true);
  });

  it('no peers: HELP and TYPE only; the checker itself rejects malformed pages', () => {
    const families = parseExposition(renderMetrics('wg0', []));
    families.delete('tswg_node_up');
    expect([...families.values()].every((f) => f.samples.length === 0 && f.type !== undefined)).toBe(true);
    expect(() => parseExposition('x{a="1} 1\n')).toThrow();
    expect(() => parseExposition('# TYPE x counter\nx{a="\\q"} 1\n')).toThrow(/bad escape/);
    expect(() => parseExposition('x 1\n')).toThrow(/without TYPE/);
    expect(() => parseExposition('# TYPE x counter\nx abc\n')).toThrow(/bad value/);
    expect(() => parseExposition('# TYPE x counter\nx 1')).toThrow(/newline/);
  });

  it('tswg_node_up is 1 for a healthy node and 0 while its device is dead', () => {
    expect(parseExposition(renderMetrics('wg0', PEERS)).get('tswg_node_up')).toMatchObject({ type: 'gauge', samples: [{ name: 'tswg_node_up', labels: {}, value: 1 }] });
    expect(parseExposition(renderMetrics('wg0', [], false)).get('tswg_node_up')!.samples[0]!.value).toBe(0);
  });

  it('content type is the text format 0.0.4', () => {
    expect(METRICS_CONTENT_TYPE).toBe('text/plain; version=0.0.4; charset=utf-8');
  });
});
