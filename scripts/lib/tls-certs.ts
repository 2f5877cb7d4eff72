/**
 * Throw-away certificate authorities and certificates made with the openssl
 * command, for tests that run etcd over TLS: a CA, then server certificates
 * (with IP subject alternative names) and client certificates it signs. Every
 * file lives in a temporary directory removed at cleanup().
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTempDir, run } from './netns.js';

const VALID_DAYS = '2';

export interface CertificateAuthority {
  name: string;
  certFile: string;
  keyFile: string;
}

export interface IssuedCertificate {
  certFile: string;
  keyFile: string;
}

/** A self-signed CA (EC P-256, a short validity). */
export function createCa(name: string, dir: string = createTempDir('tswg-tls-')): CertificateAuthority {
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', VALID_DAYS, '-subj', `/CN=${name}`, '-keyout', keyFile, '-out', certFile]);
  return { name, certFile, keyFile };
}

/**
 * A certificate signed by `ca`: for a server when `ips` are given (they go in
 * subjectAltName), otherwise a client certificate.
 */
export function issueCertificate(ca: CertificateAuthority, name: string, options: { ips?: string[] } = {}): IssuedCertificate {
  const dir = createTempDir('tswg-tls-');
  const keyFile = join(dir, `${name}-key.pem`);
  const requestFile = join(dir, `${name}.csr`);
  const certFile = join(dir, `${name}.pem`);
  const extFile = join(dir, `${name}.ext`);
  run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', keyFile, '-out', requestFile]);
  const server = options.ips !== undefined && options.ips.length > 0;
  const extensions = server
    ? `subjectAltName=${options.ips!.map((ip) => `IP:${ip}`).join(',')}\nextendedKeyUsage=serverAuth,clientAuth\n`
    : 'extendedKeyUsage=clientAuth\n';
  writeFileSync(extFile, extensions);
  run('openssl', ['x509', '-req', '-in', requestFile, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-CAcreateserial', '-days', VALID_DAYS, '-extfile', extFile, '-out', certFile]);
  return { certFile, keyFile };
}
