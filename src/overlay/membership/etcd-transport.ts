/**
 * The one request function of the etcd client: POST a JSON body to an
 * endpoint over node:http or node:https and hand back a web Response (its
 * body streams, which the watch needs). Node's global fetch cannot present a
 * client certificate without the undici package, so https goes through an
 * https.Agent that carries the CA and the client certificate and key.
 *
 * Connections are kept alive and pooled per client, as fetch would; idle
 * pooled sockets do not keep the process alive.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';

/** PEM material for https endpoints: a private CA, and a client certificate with its key. */
export interface EtcdTlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
}

const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);

/** OpenSSL/Node codes that mean the server's certificate was not trusted. */
const SERVER_CERT_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** An https failure a retry cannot fix: which side's certificate was refused, and why. */
export class TlsRefusedError extends Error {
  override readonly name = 'TlsRefusedError';
}

/**
 * A TlsRefusedError for a TLS failure (by its code), else null. `withClientCert`:
 * whether a client certificate was offered (the hint differs).
 */
export function tlsRefusal(error: unknown, withClientCert: boolean): TlsRefusedError | null {
  const { code, reason } = (error ?? {}) as { code?: unknown; reason?: unknown };
  if (typeof code !== 'string') return null;
  // OpenSSL's message carries its source file and line; its reason is the readable part.
  const detail = `${typeof reason === 'string' ? reason : (error as Error).message} [${code}]`;
  if (SERVER_CERT_CODES.has(code)) return new TlsRefusedError(`TLS: the server's certificate is not trusted (check tls.ca): ${detail}`);
  if (code.startsWith('ERR_SSL_') && /ALERT|CERTIFICATE/.test(code)) {
    const hint = withClientCert ? "the server refused this node's client certificate (check tls.cert and tls.key)" : 'the server wants a client certificate (tls.cert and tls.key)';
    return new TlsRefusedError(`TLS: ${hint}: ${detail}`);
  }
  return null;
}

export class EtcdTransport {
  private readonly http = new HttpAgent({ keepAlive: true });
  private readonly https: HttpsAgent;

  constructor(tls: EtcdTlsMaterial = {}) {
    this.https = new HttpsAgent({ keepAlive: true, ...tls });
  }

  /** POST `body` to `url`; resolves once the response headers are in, the body still streaming. */
  post(url: string, headers: Record<string, string>, body: string, signal: AbortSignal): Promise<Response> {
    const target = new URL(url);
    const secure = target.protocol === 'https:';
    const send = secure ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const request = send(
        target,
        {
          method: 'POST',
          agent: secure ? this.https : this.http,
          headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
          signal,
        },
        (incoming: IncomingMessage) => {
          const status = incoming.statusCode ?? 502;
          // A Response with one of these statuses must not have a body.
          const stream = NULL_BODY_STATUSES.has(status) ? null : (Readable.toWeb(incoming) as ReadableStream<Uint8Array>);
          if (stream === null) incoming.resume();
          resolve(new Response(stream, { status, statusText: incoming.statusMessage ?? '' }));
        },
      );
      request.once('error', (error) => reject(signal.aborted ? (signal.reason ?? error) : error));
      request.end(body);
    });
  }

  /** Close pooled connections (streams still open end too). */
  close(): void {
    this.http.destroy();
    this.https.destroy();
  }
}
