/**
 * The reference docs in docs/ against the code they describe: examples go
 * through the real parsers, and every request type, metric, command, flag and
 * environment variable the code knows must be documented (and nothing the
 * code does not know).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { RESERVED_WORDS } from '../../src/cli/main.js';
import { NETCHECK_USAGE } from '../../src/cli/netcheck.js';
import { CLIENT_COMMANDS, COMMAND_BOOLEANS, COMMAND_FLAGS, LOCAL_NODE_COMMANDS, NODE_DAEMON_BOOLEANS, NODE_DAEMON_FLAGS, READ_ONLY_COMMANDS } from '../../src/cli/node.js';
import { DEFAULT_NETCHECK_STUN_SERVERS, DEFAULT_NETCHECK_TIMEOUT_MS } from '../../src/cli/constants.js';
import { DEFAULT_HOLE_PUNCH_TIMEOUT_SECS, DEFAULT_MAX_CANDIDATE_PAIRS, DEFAULT_STUN_REFRESH_INTERVAL_SECS, DEFAULT_STUN_SERVER } from '../../src/nat/constants.js';
import { parseNodeConfig } from '../../src/overlay/config-file.js';
import {
  DEFAULT_CLUSTER_CIDR,
  DEFAULT_CONTROL_SOCKET,
  DEFAULT_ETCD_PREFIX,
  DEFAULT_PRESENCE_LEASE_TTL_SECS,
  DEFAULT_SLICE_PREFIX_LEN,
  DEFAULT_WG_PORT,
} from '../../src/overlay/constants.js';
import { renderMetrics } from '../../src/overlay/metrics.js';
import { parseRequest, parseResponse, REQUEST_TYPES, RESPONSE_TYPES } from '../../src/overlay/protocol.js';
import { codeBlocks, codeSpans, firstTableCells, readDoc, sections } from './markdown.js';

const SOURCE_ROOT = new URL('../../src/', import.meta.url).pathname;

function source(path: string): string {
  return readFileSync(join(SOURCE_ROOT, path), 'utf8');
}

/** The body of `function name(` up to the first line that is only `}`. */
function functionBody(text: string, name: string): string {
  const start = text.indexOf(`function ${name}(`);
  expect(start, `function ${name} not found`).toBeGreaterThanOrEqual(0);
  return text.slice(start, text.indexOf('\n}\n', start));
}

/** Field names a schema reader reads: reader.raw('x'), r.integer('x', …), nameField(reader, 'x'), s.x, … */
function fieldsRead(body: string, readers: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (const reader of readers) {
    for (const match of body.matchAll(new RegExp(`\\b${reader}\\.(?:raw|string|optionalString|integer|boolean)\\('(\\w+)'`, 'g'))) names.add(match[1]!);
    for (const match of body.matchAll(new RegExp(`\\b(?:nameField|optionalDnsDomainField)\\(${reader}, '(\\w+)'`, 'g'))) names.add(match[1]!);
  }
  return names;
}

/** The field names in the first column of the table under `heading`, with a prefix like `etcd.` removed. */
function documentedFields(doc: string, heading: string, prefix = ''): Set<string> {
  const section = sections(doc).get(heading);
  expect(section, `section "${heading}"`).toBeDefined();
  return new Set(firstTableCells(section!).flatMap(codeSpans).map((name) => name.slice(prefix.length)));
}

function tableRow(doc: string, cell: string): string {
  const row = doc.split('\n').find((line) => line.startsWith(`| ${cell} |`));
  expect(row, `table row for ${cell}`).toBeDefined();
  return row!;
}

describe('docs/configuration.md', () => {
  const doc = readDoc('configuration.md');

  test('every YAML and JSON example is a valid node configuration', () => {
    const examples = codeBlocks(doc).filter((block) => block.language === 'yaml' || block.language === 'json');
    expect(examples.length).toBeGreaterThanOrEqual(4);
    for (const example of examples) expect(() => parseNodeConfig(example.text, `configuration.md:${example.line}`)).not.toThrow();
  });

  test('the parser refuses unknown fields, so a documented field is one it reads', () => {
    expect(() => parseNodeConfig('deployment: demo\nwgport: 1\n', 'x.yaml')).toThrow(/wgport/);
  });

  test('the top-level, peer, NAT and membership tables list exactly the fields the parsers read', () => {
    const configFile = source('overlay/config-file.ts');
    expect(documentedFields(doc, 'Top-level fields')).toEqual(fieldsRead(functionBody(configFile, 'validateNodeConfig'), ['reader']));
    expect(documentedFields(doc, 'peers')).toEqual(fieldsRead(functionBody(source('overlay/protocol.ts'), 'parsePeerSpec'), ['reader']));
    const natFields = new Set([...functionBody(source('nat/config.ts'), 'natConfigFromSpec').matchAll(/\bs\.(\w+)/g)].map((match) => match[1]!));
    expect(documentedFields(doc, 'nat')).toEqual(natFields);
    const membership = functionBody(source('overlay/membership/config.ts'), 'parseMembershipConfig');
    expect(documentedFields(doc, 'membership', 'etcd.')).toEqual(fieldsRead(membership, ['etcd']));
  });

  test('documented defaults are the code\'s', () => {
    expect(tableRow(doc, '`clusterCidr`')).toContain(`\`${DEFAULT_CLUSTER_CIDR}\``);
    expect(tableRow(doc, '`wgPort`')).toContain(`\`${DEFAULT_WG_PORT}\``);
    expect(tableRow(doc, '`stunServers`')).toContain(`\`${DEFAULT_STUN_SERVER}\``);
    expect(tableRow(doc, '`holePunchTimeoutSecs`')).toContain(`\`${DEFAULT_HOLE_PUNCH_TIMEOUT_SECS}\``);
    expect(tableRow(doc, '`stunRefreshIntervalSecs`')).toContain(`\`${DEFAULT_STUN_REFRESH_INTERVAL_SECS}\``);
    expect(tableRow(doc, '`maxCandidatePairs`')).toContain(`\`${DEFAULT_MAX_CANDIDATE_PAIRS}\``);
    expect(tableRow(doc, '`etcd.prefix`')).toContain(`\`${DEFAULT_ETCD_PREFIX}\``);
    expect(tableRow(doc, '`etcd.leaseTtlSeconds`')).toContain(`\`${DEFAULT_PRESENCE_LEASE_TTL_SECS}\``);
    expect(tableRow(doc, '`etcd.sliceLength`')).toContain(`\`${DEFAULT_SLICE_PREFIX_LEN}\``);
  });
});

describe('docs/control-api.md', () => {
  const doc = readDoc('control-api.md');
  const requestSections = sections(doc.slice(doc.indexOf('\n## Requests\n') + '\n## Requests\n'.length));

  test('every request type of the protocol has a section, and every section is a request type', () => {
    const undocumented = REQUEST_TYPES.filter((type) => !requestSections.has(type));
    expect(undocumented, `undocumented request types: ${undocumented.join(', ')}`).toEqual([]);
    const unknown = [...requestSections.keys()].filter((heading) => !(REQUEST_TYPES as readonly string[]).includes(heading));
    expect(unknown, `sections for no request type: ${unknown.join(', ')}`).toEqual([]);
  });

  test('each section has a request of its type and an answer, and both pass the protocol\'s validators', () => {
    for (const [type, text] of requestSections) {
      const blocks = codeBlocks(text);
      const requests = blocks.filter((block) => block.role === 'request');
      const responses = blocks.filter((block) => block.role === 'response');
      expect(requests.length, `${type}: request example`).toBeGreaterThan(0);
      expect(responses.length, `${type}: answer example`).toBeGreaterThan(0);
      for (const block of requests) expect(parseRequest(block.text.trim()).type, type).toBe(type);
      for (const block of responses) expect(() => parseResponse(block.text.trim()), `${type}: ${block.text}`).not.toThrow();
    }
  });

  test('every answer type appears in an example, the Err one included', () => {
    const shown = new Set(codeBlocks(doc).filter((block) => block.role === 'response').map((block) => parseResponse(block.text.trim()).type));
    expect([...RESPONSE_TYPES].filter((type) => !shown.has(type))).toEqual([]);
  });

  test('the error examples are the parser\'s own messages', () => {
    const examples = [
      ['{"type": "AddPeer", "peer": {"publicKey": "x"}, "scope": "global"}', 'AddPeer.peer.publicKey: expected a base64 WireGuard public key (44 characters), got \\"x\\"'],
      ['{"type": "Status", "x": 1}', 'Status: unknown field \\"x\\"'],
      ['{"type": "Frob"}', 'unknown request type \\"Frob\\"'],
    ] as const;
    for (const [line, documented] of examples) {
      expect(() => parseRequest(line)).toThrow(documented.replace(/\\"/g, '"'));
      expect(doc.includes(documented) || doc.includes(documented.replace(/\\"/g, '"'))).toBe(true);
    }
    expect(doc).toContain(DEFAULT_CONTROL_SOCKET);
  });
});

describe('docs/metrics.md', () => {
  const doc = readDoc('metrics.md');
  const page = renderMetrics(
    'zl-prod-node1-g',
    [{ publicKey: 'KCv7P0UZu8KJDEP96PRlyU/AVTAJCm8d/ODNyl5czxE=', endpoint: '192.0.2.2:51820', allowedIps: ['10.200.2.0/26'], latestHandshake: 1, rxBytes: 1, txBytes: 2048, connectionType: 'direct' }],
    true,
    { answered: 1, forwarded: 0, refused: 0, malformed: 0 },
  );
  const exported = new Map([...page.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((match) => [match[1]!, match[2]!]));

  test('the table lists exactly the metrics the node exports, with their types and labels', () => {
    const rows = new Map(
      doc
        .split('\n')
        .filter((line) => /^\| `\w+` \|/.test(line))
        .map((line) => {
          const cells = line.split('|').map((cell) => cell.trim());
          return [codeSpans(cells[1]!)[0]!, { type: cells[2]!, labels: codeSpans(cells[3]!).sort() }] as const;
        }),
    );
    expect([...rows.keys()].sort()).toEqual([...exported.keys()].sort());
    for (const [name, type] of exported) {
      expect(rows.get(name)!.type, name).toBe(type);
      const sample = page.split('\n').find((line) => line.startsWith(name) && !line.startsWith('#'))!;
      const labels = [...sample.matchAll(/[{,](\w+)="/g)].map((match) => match[1]!).sort();
      expect(rows.get(name)!.labels, name).toEqual(labels);
    }
  });

  test('the example page\'s HELP and TYPE lines are the node\'s', () => {
    const [example] = codeBlocks(doc).filter((block) => block.language === 'text');
    const pageLines = new Set(page.split('\n'));
    for (const line of example!.text.split('\n').filter((l) => l.startsWith('#'))) expect(pageLines.has(line), line).toBe(true);
  });
});

describe('docs/cli.md', () => {
  const doc = readDoc('cli.md');
  const headings = sections(doc);

  test('every command word has a section, and every section is a command', () => {
    for (const word of RESERVED_WORDS) expect(headings.has(`tswg ${word}`), `tswg ${word}`).toBe(true);
    const nodeCommands = [...CLIENT_COMMANDS, ...LOCAL_NODE_COMMANDS];
    for (const command of nodeCommands) expect(headings.has(`tswg node ${command}`), `tswg node ${command}`).toBe(true);
    const documented = [...headings.keys()].filter((heading) => heading.startsWith('tswg '));
    const known = new Set(['tswg INTERFACE', ...RESERVED_WORDS.map((word) => `tswg ${word}`), ...nodeCommands.map((command) => `tswg node ${command}`)]);
    expect(documented.filter((heading) => !known.has(heading))).toEqual([]);
  });

  test('every flag of every command is documented in its section', () => {
    for (const flag of [...NODE_DAEMON_FLAGS, ...NODE_DAEMON_BOOLEANS]) expect(headings.get('tswg node'), flag).toContain(`\`${flag}`);
    for (const command of CLIENT_COMMANDS) {
      const text = headings.get(`tswg node ${command}`)!;
      for (const flag of [...(COMMAND_FLAGS[command] ?? []), ...(COMMAND_BOOLEANS[command] ?? [])]) expect(text, `${command} ${flag}`).toContain(`\`${flag}`);
      if (READ_ONLY_COMMANDS.includes(command)) expect(text, `${command} --watch`).toContain('`--watch');
    }
    expect(headings.get('tswg node pubkey')).toContain('--data-dir');
    const netcheckFlags = new Set([...NETCHECK_USAGE.matchAll(/--[a-z][a-z-]+/g)].map((match) => match[0]));
    for (const flag of netcheckFlags) expect(headings.get('tswg netcheck'), flag).toContain(`\`${flag}`);
    for (const server of DEFAULT_NETCHECK_STUN_SERVERS) expect(headings.get('tswg netcheck')).toContain(server);
    expect(headings.get('tswg netcheck')).toContain(`default ${DEFAULT_NETCHECK_TIMEOUT_MS}`);
    expect(headings.get('tswg INTERFACE')).toContain('`--foreground`');
  });

  test('the exit statuses are the CLI\'s', () => {
    expect(tableRow(doc, '0')).toContain('success');
    expect(tableRow(doc, '1')).toContain('failure');
    expect(tableRow(doc, '2')).toContain('bad flags or arguments');
  });
});

describe('docs/environment.md', () => {
  const doc = readDoc('environment.md');
  const documented = new Set(firstTableCells(doc).flatMap(codeSpans));

  function sourceFiles(directory: string): string[] {
    return readdirSync(directory).flatMap((name) => {
      const path = join(directory, name);
      return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
    });
  }

  test('every environment variable the code reads is documented', () => {
    const used = new Set<string>();
    for (const file of sourceFiles(SOURCE_ROOT)) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/\b(?:TSWG|WG|LOG|ZLAYER)_[A-Z0-9_]+\b/g)) used.add(match[0]);
      for (const match of text.matchAll(/process\.env\.([A-Z][A-Z0-9_]*)/g)) used.add(match[1]!);
    }
    expect(used.size).toBeGreaterThan(5);
    expect([...used].filter((name) => !documented.has(name)).sort()).toEqual([]);
  });
});

describe('links', () => {
  test('every relative link in README.md, ARCHITECTURE.md and docs/ points at a file of the repository', () => {
    const root = new URL('../../', import.meta.url).pathname;
    const files = ['README.md', 'ARCHITECTURE.md', ...readdirSync(join(root, 'docs')).map((name) => `docs/${name}`)];
    const broken: string[] = [];
    for (const file of files) {
      const text = readFileSync(join(root, file), 'utf8');
      for (const match of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        const target = match[1]!;
        if (/^[a-z]+:/.test(target)) continue;
        try {
          statSync(join(root, file.includes('/') ? file.slice(0, file.lastIndexOf('/')) : '', target));
        } catch {
          broken.push(`${file} → ${target}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });
});
