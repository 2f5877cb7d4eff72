/**
 * OverlayEngine without a global overlay (no root needed, nothing on the
 * host changes): what the node engine answers without a device —
 * status before setup, scope errors through dispatch, endpoint-first
 * parsing, the allocator behind AllocateIp/ReleaseIp with its assignments
 * persisted across a restart, NatStatus/NatTick before setup, Shutdown.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/device/logger.js';
import { STATE_FILE_NAME } from '../../src/overlay/constants.js';
import { OverlayEngine } from '../../src/overlay/engine.js';
import type { Request, Response } from '../../src/overlay/protocol.js';

const KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';
const dirs: string[] = [];

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tswg-engine-'));
  dirs.push(dir);
  return dir;
}

function engineIn(dataDir: string): OverlayEngine {
  return new OverlayEngine({ dataDir, log: silentLogger, rootless: true });
}

function peer(endpoint = '192.0.2.1:51820') {
  return { publicKey: KEY, endpoint, allowedIps: '10.200.9.0/26', persistentKeepaliveSecs: 25, candidates: [] };
}

async function errOf(engine: OverlayEngine, request: Request): Promise<string> {
  const response = await engine.handle(request);
  expect(response.type, JSON.stringify(response)).toBe('Err');
  return (response as Extract<Response, { type: 'Err' }>).message;
}

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('OverlayEngine before SetupGlobalOverlay', () => {
  it('reports an empty status bound to the default cluster CIDR (status_snapshot_before_setup_is_empty)', async () => {
    const engine = engineIn(freshDir());
    const response = await engine.handle({ type: 'Status' });
    expect(response).toEqual({
      type: 'Status',
      interface: null,
      nodeIp: null,
      publicKey: null,
      overlayCidr: '10.200.0.0/16',
      sliceCidr: null,
      peerCount: 0,
      serviceCount: 0,
      peers: [],
      services: [],
      dedicatedServices: [],
      health: 'ok',
      dns: { listening: null, domain: null, records: 0, answered: 0, forwarded: 0, refused: 0, malformed: 0 },
    });
  });

  it('refuses Global-scope peer changes with "global overlay not set up" (transport_for_scope_global_requires_setup)', async () => {
    const engine = engineIn(freshDir());
    expect(await errOf(engine, { type: 'AddPeer', peer: peer(), scope: 'global' })).toBe('global overlay not set up');
    expect(await errOf(engine, { type: 'RemovePeer', pubkey: KEY, scope: 'global' })).toBe('global overlay not set up');
    expect(await errOf(engine, { type: 'AddAllowedIp', pubkey: KEY, cidr: '10.1.0.0/24', scope: 'global' })).toBe('global overlay not set up');
    expect(await errOf(engine, { type: 'RemoveAllowedIp', pubkey: KEY, cidr: '10.1.0.0/24', scope: 'global' })).toBe('global overlay not set up');
  });

  it('answers a service scope before setup with the exact message the control plane knows', async () => {
    const engine = engineIn(freshDir());
    expect(await errOf(engine, { type: 'AddPeer', peer: peer(), scope: { service: 'web' } })).toBe('no dedicated overlay for service web');
    expect(await errOf(engine, { type: 'RemovePeer', pubkey: KEY, scope: { service: 'db' } })).toBe('no dedicated overlay for service db');
  });

  it('parses the peer endpoint before resolving the scope, so a bad endpoint always errors as such', async () => {
    const engine = engineIn(freshDir());
    const message = await errOf(engine, { type: 'AddPeer', peer: peer('not-an-endpoint'), scope: { service: 'web' } });
    expect(message).toMatch(/^invalid peer endpoint not-an-endpoint/);
  });

  it('refuses the node\'s own public key as a peer', async () => {
    const engine = engineIn(freshDir());
    const message = await errOf(engine, { type: 'AddPeer', peer: { ...peer(), publicKey: engine.publicKey }, scope: 'global' });
    expect(message).toBe(`peer ${engine.publicKey} is this node's own public key`);
  });

  it('checks the CIDR of AddAllowedIp before the scope ("invalid CIDR …")', async () => {
    const engine = engineIn(freshDir());
    expect(await errOf(engine, { type: 'AddAllowedIp', pubkey: KEY, cidr: '10.0.0.0/40', scope: 'global' })).toMatch(/^invalid CIDR 10\.0\.0\.0\/40/);
  });

  it('refuses a setup with a bad CIDR or a slice of the other family, changing nothing', async () => {
    const engine = engineIn(freshDir());
    const base = { type: 'SetupGlobalOverlay', deployment: 'd', instanceId: 'i', wgPort: 51820, hostAdapterMandatory: false } as const;
    expect(await errOf(engine, { ...base, clusterCidr: '10.200.0.0' })).toMatch(/^invalid CIDR 10\.200\.0\.0/);
    expect(await errOf(engine, { ...base, clusterCidr: '10.200.0.0/16', sliceCidr: 'fd00::/64' })).toMatch(/differ in IP family/);
    expect(await errOf(engine, { ...base, clusterCidr: '10.200.0.0/16', sliceCidr: '10.201.0.0/26' })).toMatch(/not inside the cluster/);
    expect(await errOf(engine, { ...base, clusterCidr: '10.200.0.0/16', sliceCidr: '10.0.0.0/8' })).toMatch(/not inside the cluster/);
    expect((await engine.handle({ type: 'Status' })).type).toBe('Status');
    expect(engine.interfaceName).toBeNull();
  });

  it('allocates from base + 2, never the node IP, reuses a released address first (allocate_and_release_ip_round_trip)', async () => {
    const engine = engineIn(freshDir());
    const ips: string[] = [];
    for (let i = 0; i < 10; i++) {
      const response = await engine.handle({ type: 'AllocateIp', service: 'web', joinGlobal: false });
      expect(response.type).toBe('Ip');
      ips.push((response as { ip: string }).ip);
    }
    expect(ips[0]).toBe('10.200.0.2');
    expect(new Set(ips).size).toBe(10);
    expect(ips).not.toContain('10.200.0.1');
    expect(await engine.handle({ type: 'ReleaseIp', ip: ips[3]! })).toEqual({ type: 'Ok' });
    expect(await engine.handle({ type: 'AllocateIp', service: 'db', joinGlobal: true })).toEqual({ type: 'Ip', ip: ips[3] });
    // Releasing the node IP never makes it allocatable.
    expect(await engine.handle({ type: 'ReleaseIp', ip: '10.200.0.1' })).toEqual({ type: 'Ok' });
    expect(await engine.handle({ type: 'AllocateIp', service: 'x', joinGlobal: false })).toEqual({ type: 'Ip', ip: '10.200.0.12' });
  });

  it('persists assignments: a new engine on the same data directory keeps them and never hands them out again', async () => {
    const dir = freshDir();
    const first = engineIn(dir);
    const a = (await first.handle({ type: 'AllocateIp', service: 'web', joinGlobal: false })) as { ip: string };
    const b = (await first.handle({ type: 'AllocateIp', service: 'db', joinGlobal: false })) as { ip: string };
    const c = (await first.handle({ type: 'AllocateIp', service: 'cache', joinGlobal: false })) as { ip: string };
    await first.handle({ type: 'ReleaseIp', ip: b.ip });
    const saved = JSON.parse(readFileSync(join(dir, STATE_FILE_NAME), 'utf8')) as { assignments: Record<string, string>; publicKey: string };
    expect(saved.assignments).toEqual({ [a.ip]: 'web', [c.ip]: 'cache' });

    const second = engineIn(dir);
    expect(second.publicKey).toBe(first.publicKey);
    const got: string[] = [];
    for (let i = 0; i < 3; i++) got.push(((await second.handle({ type: 'AllocateIp', service: 'n', joinGlobal: false })) as { ip: string }).ip);
    expect(got).not.toContain(a.ip);
    expect(got).not.toContain(c.ip);
    expect(got).toContain(b.ip);
  });

  it('keeps SetLocalNodeId in the state file', async () => {
    const dir = freshDir();
    expect(await engineIn(dir).handle({ type: 'SetLocalNodeId', nodeId: 42 })).toEqual({ type: 'Ok' });
    expect((JSON.parse(readFileSync(join(dir, STATE_FILE_NAME), 'utf8')) as { localNodeId: number }).localNodeId).toBe(42);
  });

  it('answers NatStatus with the empty wire snapshot and NatTick with Ok (nat_status_request_returns_wire_snapshot)', async () => {
    const engine = engineIn(freshDir());
    expect(await engine.handle({ type: 'NatStatus' })).toEqual({ type: 'NatStatus', candidates: [], peers: [], lastRefresh: 0 });
    expect(await engine.handle({ type: 'NatTick' })).toEqual({ type: 'Ok' });
  });

  it('tears down idempotently and marks Shutdown', async () => {
    const engine = engineIn(freshDir());
    expect(await engine.handle({ type: 'TeardownGlobalOverlay' })).toEqual({ type: 'Ok' });
    expect(engine.shutdownRequested).toBe(false);
    expect(await engine.handle({ type: 'Shutdown' })).toEqual({ type: 'Ok' });
    expect(engine.shutdownRequested).toBe(true);
  });

  it('renders metrics with no peers before setup', () => {
    const text = engineIn(freshDir()).metrics();
    expect(text).toContain('wireguard_sent_bytes_total');
    expect(text).not.toMatch(/public_key="/);
  });
});

describe('service overlays and attach before SetupGlobalOverlay (nothing recorded, clear errors)', () => {
  const attach = (handle: Extract<Request, { type: 'AttachContainer' }>['handle'], service = 'web'): Request => ({
    type: 'AttachContainer',
    handle,
    service,
    joinGlobal: false,
    dnsServer: null,
    dnsDomain: null,
    ephemeral: false,
    isolationNetwork: null,
  });

  it('refuses every mode until the global overlay is up (dispatch_handles_all_three_modes_without_panic)', async () => {
    const engine = engineIn(freshDir());
    for (const mode of ['auto', 'shared', 'dedicated'] as const) {
      expect(await errOf(engine, { type: 'SetupServiceOverlay', service: 'web', mode })).toBe('service overlays need the global overlay: send SetupGlobalOverlay first');
    }
    const status = await engine.handle({ type: 'Status' });
    expect(status).toMatchObject({ serviceCount: 0, services: [], dedicatedServices: [] });
  });

  it('attaching to a service without an overlay names the service (attach_shared_without_setup_errors_cleanly)', async () => {
    const engine = engineIn(freshDir());
    expect(await errOf(engine, attach({ linuxPid: process.pid }, 'cache'))).toBe('no service overlay for service cache on this node; send SetupServiceOverlay first');
  });

  it('guest-managed and host-shared attach need the global overlay; nothing is recorded (guest_attach_requires_global_overlay)', async () => {
    const dir = freshDir();
    const engine = engineIn(dir);
    expect(await errOf(engine, attach({ guestManaged: 'vm-1' }))).toMatch(/^guest-managed attach requires the global overlay/);
    expect(await errOf(engine, attach({ hostShared: 'box-1' }))).toMatch(/^host-shared attach requires the global overlay/);
    expect(readdirSync(dir)).not.toContain('attachments.json');
  });

  it('detach of an unknown handle is Ok, every kind (detach_unknown_guest_is_idempotent)', async () => {
    const engine = engineIn(freshDir());
    expect(await engine.handle({ type: 'DetachContainer', handle: { guestManaged: 'nobody' } })).toEqual({ type: 'Ok' });
    expect(await engine.handle({ type: 'DetachContainer', handle: { hostShared: 'nobody' } })).toEqual({ type: 'Ok' });
    expect(await engine.handle({ type: 'TeardownServiceOverlay', service: 'never-set-up' })).toEqual({ type: 'Ok' });
  });

  it('a Service scope without a dedicated overlay keeps the exact message (transport_for_scope_unset_service_errors)', async () => {
    const engine = engineIn(freshDir());
    expect(await errOf(engine, { type: 'AddAllowedIp', pubkey: KEY, cidr: '10.1.0.0/24', scope: { service: 'db' } })).toBe('no dedicated overlay for service db');
  });
});
