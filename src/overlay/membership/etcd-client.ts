/**
 * A small etcd v3 client over etcd's JSON gateway (POST /v3/kv/range,
 * /v3/kv/txn, /v3/lease/*, /v3/watch), with Node's own http/https
 * (etcd-transport.ts): no npm dependency, and lease ids stay plain strings, so
 * a lease saved in the data directory can be renewed again after a restart.
 *
 * Keys and values are base64 on the wire; int64 fields (revisions, lease ids)
 * are decimal strings and stay strings here except revisions, which fit a
 * JS number for any real cluster's lifetime.
 *
 * Every unary call has a timeout and fails over to the next endpoint on a
 * network error, a timeout or an "unavailable" answer (a member without a
 * leader). With a username, a token from /v3/auth/authenticate is sent in the
 * Authorization header; simple tokens are only valid on the member that issued
 * them, so one is kept per endpoint. https:// endpoints use Node's CA store
 * (NODE_EXTRA_CA_CERTS adds a private CA) or the CA given in `tls`, and present
 * `tls`'s client certificate when etcd asks for one. A certificate refused on
 * every endpoint is an EtcdError, not "unavailable": retrying cannot fix it.
 */
import { ETCD_REQUEST_TIMEOUT_MS } from '../constants.js';
import { EtcdTransport, TlsRefusedError, tlsRefusal, type EtcdTlsMaterial } from './etcd-transport.js';

/** etcd answered, but with an error (the message is etcd's). */
export class EtcdError extends Error {
  override readonly name: string = 'EtcdError';
}

/** No endpoint could be reached (or none answered in time). */
export class EtcdUnavailableError extends EtcdError {
  override readonly name = 'EtcdUnavailableError';
}

export interface EtcdClientOptions {
  endpoints: readonly string[];
  username?: string;
  password?: string;
  timeoutMs?: number;
  tls?: EtcdTlsMaterial;
}

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  /** "0" when the key has no lease. */
  lease: string;
}

export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
  prevKv: KeyValue | null;
}

/** One message of a watch stream. */
export interface WatchMessage {
  /** The header's revision. */
  revision: number;
  created: boolean;
  canceled: boolean;
  /** Non-zero when the start revision was compacted away: the watch is over, list again. */
  compactRevision: number;
  events: WatchEvent[];
}

type Json = Record<string, unknown>;

/** gRPC status codes the gateway reports that mean "try another member". */
const UNAVAILABLE_CODES = new Set([14 /* UNAVAILABLE */, 4 /* DEADLINE_EXCEEDED */]);
const UNAUTHENTICATED_CODE = 16;
const INVALID_TOKEN_TEXT = 'invalid auth token';

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
const unb64 = (value: unknown): string => (typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : '');
const int = (value: unknown): number => (typeof value === 'string' || typeof value === 'number' ? Number(value) || 0 : 0);

/** The range_end that makes `prefix` a prefix query: the prefix with its last byte incremented. */
export function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i]!++;
      return end.toString('base64');
    }
  }
  return b64('\0');
}

function toKeyValue(raw: unknown): KeyValue {
  const kv = (raw ?? {}) as Json;
  return {
    key: unb64(kv.key),
    value: unb64(kv.value),
    createRevision: int(kv.create_revision),
    modRevision: int(kv.mod_revision),
    lease: typeof kv.lease === 'string' ? kv.lease : '0',
  };
}

function headerRevision(body: Json): number {
  return int((body.header as Json | undefined)?.revision);
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
  }
  return String(error);
}

export class EtcdClient {
  readonly endpoints: readonly string[];
  private readonly timeoutMs: number;
  /** The endpoint that answered last: tried first next time. */
  private current = 0;
  private readonly tokens = new Map<string, string>();
  private readonly transport: EtcdTransport;

  constructor(private readonly options: EtcdClientOptions) {
    if (options.endpoints.length === 0) throw new EtcdError('etcd: no endpoints configured');
    this.endpoints = options.endpoints.map((e) => e.replace(/\/+$/, ''));
    this.timeoutMs = options.timeoutMs ?? ETCD_REQUEST_TIMEOUT_MS;
    this.transport = new EtcdTransport(options.tls);
  }

  /** Close pooled connections (a watch in progress ends too). */
  close(): void {
    this.transport.close();
  }

  /** The endpoint tried first now. */
  get endpoint(): string {
    return this.endpoints[this.current]!;
  }

  // ---- kv ----------------------------------------------------------------------

  /** Every key under `prefix` (or the one key), with the store's revision. */
  async range(key: string, options: { prefix?: boolean; keysOnly?: boolean; revision?: number } = {}): Promise<{ revision: number; kvs: KeyValue[] }> {
    const body: Json = { key: b64(key) };
    if (options.prefix === true) body.range_end = prefixEnd(key);
    if (options.keysOnly === true) body.keys_only = true;
    if (options.revision !== undefined) body.revision = String(options.revision);
    const answer = await this.call('/v3/kv/range', body);
    return { revision: headerRevision(answer), kvs: ((answer.kvs as unknown[]) ?? []).map(toKeyValue) };
  }

  /** Put `key` only if it does not exist; otherwise return what is there. */
  async createIfAbsent(key: string, value: string, lease = '0'): Promise<{ created: boolean; existing: KeyValue | null; revision: number }> {
    const answer = await this.call('/v3/kv/txn', {
      compare: [{ key: b64(key), target: 'CREATE', result: 'EQUAL', create_revision: '0' }],
      success: [{ request_put: { key: b64(key), value: b64(value), lease } }],
      failure: [{ request_range: { key: b64(key) } }],
    });
    return { created: answer.succeeded === true, existing: answer.succeeded === true ? null : firstRangeKv(answer), revision: headerRevision(answer) };
  }

  /** Put `key` only if it is still at `modRevision` (an optimistic update); false when it changed meanwhile. */
  async replaceIfUnchanged(key: string, value: string, modRevision: number, lease = '0'): Promise<boolean> {
    const answer = await this.call('/v3/kv/txn', {
      compare: [{ key: b64(key), target: 'MOD', result: 'EQUAL', mod_revision: String(modRevision) }],
      success: [{ request_put: { key: b64(key), value: b64(value), lease } }],
    });
    return answer.succeeded === true;
  }

  async put(key: string, value: string, lease = '0'): Promise<number> {
    return headerRevision(await this.call('/v3/kv/put', { key: b64(key), value: b64(value), lease }));
  }

  async delete(key: string): Promise<void> {
    await this.call('/v3/kv/deleterange', { key: b64(key) });
  }

  // ---- leases ------------------------------------------------------------------

  async leaseGrant(ttlSecs: number): Promise<{ id: string; ttl: number }> {
    const answer = await this.call('/v3/lease/grant', { TTL: String(ttlSecs) });
    if (typeof answer.ID !== 'string' || answer.error !== undefined) throw new EtcdError(`etcd: lease grant failed: ${String(answer.error ?? 'no lease id')}`);
    return { id: answer.ID, ttl: int(answer.TTL) };
  }

  /** Renew `id` once; the remaining TTL in seconds, 0 when the lease no longer exists. */
  async leaseKeepAlive(id: string): Promise<number> {
    const answer = await this.call('/v3/lease/keepalive', { ID: id });
    return int(((answer.result ?? {}) as Json).TTL);
  }

  /** Revoke `id`, deleting its keys; a lease that is already gone is not an error. */
  async leaseRevoke(id: string): Promise<void> {
    try {
      await this.call('/v3/lease/revoke', { ID: id });
    } catch (error) {
      if (error instanceof EtcdError && !(error instanceof EtcdUnavailableError) && /lease not found/.test(error.message)) return;
      throw error;
    }
  }

  // ---- watch -------------------------------------------------------------------

  /**
   * Watch every key under `prefix` from `startRevision` (with previous
   * values), calling `onMessage` per message, until the stream ends, `signal`
   * aborts or the watch is cancelled (compaction). Resolves when the stream
   * ends; rejects on connection errors.
   */
  async watch(prefix: string, startRevision: number, onMessage: (message: WatchMessage) => void, signal: AbortSignal): Promise<void> {
    const body = {
      create_request: { key: b64(prefix), range_end: prefixEnd(prefix), start_revision: String(startRevision), prev_kv: true, progress_notify: true },
    };
    const response = await this.send('/v3/watch', body, signal, false);
    const reader = response.body?.getReader();
    if (reader === undefined) throw new EtcdUnavailableError(`etcd ${this.endpoint}: watch answered without a body`);
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        buffered += decoder.decode(value, { stream: true });
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line === '') continue;
          const message = parseWatchLine(line, this.endpoint);
          onMessage(message);
          if (message.canceled) return;
        }
      }
    } finally {
      reader.releaseLock();
      if (!signal.aborted) void response.body?.cancel().catch(() => undefined);
    }
  }

  // ---- transport ---------------------------------------------------------------

  /** POST a unary request: JSON in, JSON out. */
  private async call(path: string, body: Json): Promise<Json> {
    const response = await this.send(path, body, null, true);
    const text = await response.text();
    try {
      return JSON.parse(text) as Json;
    } catch {
      throw new EtcdError(`etcd ${this.endpoint}${path}: not JSON: ${text.slice(0, 200)}`);
    }
  }

  /**
   * Send to the current endpoint, then each other one, until one answers with
   * a usable status. `timed` bounds the whole exchange; otherwise only until
   * the response headers (a watch stream lives on).
   */
  private async send(path: string, body: Json, signal: AbortSignal | null, timed: boolean): Promise<Response> {
    const failures: string[] = [];
    let refused = false;
    for (let attempt = 0; attempt < this.endpoints.length; attempt++) {
      const index = (this.current + attempt) % this.endpoints.length;
      const endpoint = this.endpoints[index]!;
      try {
        const response = await this.sendTo(endpoint, path, body, signal, timed);
        this.current = index;
        return response;
      } catch (error) {
        if (signal?.aborted === true) throw error;
        if (error instanceof EtcdError && !(error instanceof EtcdUnavailableError)) {
          this.current = index;
          throw error;
        }
        const tls = error instanceof TlsRefusedError ? error : tlsRefusal(error, this.options.tls?.cert !== undefined);
        if (tls !== null) refused = true;
        failures.push(`${endpoint}: ${describe(tls ?? error)}`);
      }
    }
    if (refused) throw new EtcdError(`etcd refused this node's TLS connection (${failures.join('; ')})`);
    throw new EtcdUnavailableError(`etcd unreachable (${failures.join('; ')})`);
  }

  private async sendTo(endpoint: string, path: string, body: Json, signal: AbortSignal | null, timed: boolean, retried = false): Promise<Response> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.username !== undefined) headers.authorization = await this.token(endpoint);
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new EtcdUnavailableError(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs);
    const combined = signal === null ? timeout.signal : AbortSignal.any([timeout.signal, signal]);
    let response: Response;
    try {
      response = await this.transport.post(`${endpoint}${path}`, headers, JSON.stringify(body), combined);
      if (response.ok) {
        if (!timed) return response;
        // Buffer the body inside the timeout, then hand out a fresh Response.
        const text = await response.text();
        return new Response(text, { status: response.status });
      }
      const text = await response.text();
      let error: Json = {};
      try {
        error = JSON.parse(text) as Json;
      } catch {
        error = { message: text };
      }
      const code = int(error.code);
      const message = String(error.message ?? error.error ?? text);
      if (this.options.username !== undefined && !retried && (code === UNAUTHENTICATED_CODE || message.includes(INVALID_TOKEN_TEXT))) {
        this.tokens.delete(endpoint);
        return await this.sendTo(endpoint, path, body, signal, timed, true);
      }
      if (UNAVAILABLE_CODES.has(code) || response.status >= 502) throw new EtcdUnavailableError(`HTTP ${response.status}: ${message}`);
      throw new EtcdError(`etcd ${endpoint}${path}: ${message}`);
    } catch (error) {
      if (timeout.signal.aborted && !(signal?.aborted === true)) throw new EtcdUnavailableError(`no answer within ${this.timeoutMs} ms`);
      throw tlsRefusal(error, this.options.tls?.cert !== undefined) ?? error;
    } finally {
      // A watch keeps streaming after this: only its connection was bounded.
      clearTimeout(timer);
    }
  }

  /** The Authorization header value for `endpoint`, authenticating there when none is cached. */
  private async token(endpoint: string): Promise<string> {
    const cached = this.tokens.get(endpoint);
    if (cached !== undefined) return cached;
    let response: Response;
    try {
      const credentials = JSON.stringify({ name: this.options.username, password: this.options.password ?? '' });
      response = await this.transport.post(`${endpoint}/v3/auth/authenticate`, { 'content-type': 'application/json' }, credentials, AbortSignal.timeout(this.timeoutMs));
    } catch (error) {
      throw tlsRefusal(error, this.options.tls?.cert !== undefined) ?? new EtcdUnavailableError(`authenticate: ${describe(error)}`);
    }
    const answer = (await response.json().catch(() => ({}))) as Json;
    if (!response.ok || typeof answer.token !== 'string') {
      throw new EtcdError(`etcd ${endpoint}: authentication as ${JSON.stringify(this.options.username)} failed: ${String(answer.message ?? answer.error ?? `HTTP ${response.status}`)}`);
    }
    this.tokens.set(endpoint, answer.token);
    return answer.token;
  }
}

function firstRangeKv(answer: Json): KeyValue | null {
  for (const entry of (answer.responses as Json[] | undefined) ?? []) {
    const kvs = ((entry.response_range as Json | undefined)?.kvs as unknown[] | undefined) ?? [];
    if (kvs.length > 0) return toKeyValue(kvs[0]);
  }
  return null;
}

function parseWatchLine(line: string, endpoint: string): WatchMessage {
  let parsed: Json;
  try {
    parsed = JSON.parse(line) as Json;
  } catch {
    throw new EtcdUnavailableError(`etcd ${endpoint}: watch sent a line that is not JSON: ${line.slice(0, 200)}`);
  }
  if (parsed.error !== undefined) {
    const error = parsed.error as Json;
    throw new EtcdUnavailableError(`etcd ${endpoint}: watch failed: ${String(error.message ?? JSON.stringify(error))}`);
  }
  const result = (parsed.result ?? {}) as Json;
  return {
    revision: headerRevision(result),
    created: result.created === true,
    canceled: result.canceled === true,
    compactRevision: int(result.compact_revision),
    events: ((result.events as Json[] | undefined) ?? []).map((event) => ({
      type: event.type === 'DELETE' ? ('delete' as const) : ('put' as const),
      kv: toKeyValue(event.kv),
      prevKv: event.prev_kv === undefined ? null : toKeyValue(event.prev_kv),
    })),
  };
}
