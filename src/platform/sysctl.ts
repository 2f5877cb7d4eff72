/**
 * Sysctls through /proc/sys (never the sysctl(8) program), as the reference
 * system's set_sysctl / read_sysctl do.
 *
 * Keys: dotted (`net.ipv4.ip_forward`, dots become '/'), or slash-separated
 * (`net/ipv6/conf/eth0.100/forwarding`, taken as is) for names that contain
 * dots, like sysctl(8) accepts. A key with an empty, '.' or '..' component is
 * rejected.
 *
 * Namespaces: /proc/sys/net/... shows the network namespace of the *thread
 * that opens the file*. These functions act on the process's own namespace;
 * inside withNetns() use the context's readSysctl / setSysctl, which open the
 * file on a thread that has entered the target namespace.
 *
 * IPv6 forwarding is enabled per interface (setIpv6Forwarding), never through
 * net.ipv6.conf.all.forwarding: writing that one resets accept_ra / autoconf
 * on every interface, so the public NIC drops its RA default route (SSH to
 * the host stalls). setSysctl refuses that key.
 *
 * Errors: IoError (with the errno name as code) when the file cannot be read
 * or written, or the key is malformed; PlatformError for the refused key.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { IoError, PlatformError } from './errors.js';

const PROC_SYS = '/proc/sys/';
const FORBIDDEN = 'net/ipv6/conf/all/forwarding';

/** '/proc/sys/net/ipv4/ip_forward' for 'net.ipv4.ip_forward' (or 'net/ipv4/ip_forward'). */
export function sysctlPath(key: string): string {
  if (typeof key !== 'string' || key === '') throw new IoError('empty sysctl key', 'EINVAL');
  const parts = key.includes('/') ? key.replace(/^\/+/, '').split('/') : key.split('.');
  if (parts.some((part) => part === '' || part === '.' || part === '..' || part.includes('\0'))) {
    throw new IoError(`invalid sysctl key '${key}'`, 'EINVAL');
  }
  return PROC_SYS + parts.join('/');
}

/** The sysctl file of net.ipv6.conf.<ifname>.forwarding (the name may contain dots). */
export function ipv6ForwardingPath(ifname: string): string {
  if (typeof ifname !== 'string' || ifname === '' || ifname === '.' || ifname === '..' || /[/\0]/.test(ifname)) {
    throw new IoError(`invalid interface name '${String(ifname)}' for net.ipv6.conf.<if>.forwarding`, 'EINVAL');
  }
  if (ifname === 'all') {
    throw new PlatformError(
      'refusing to set net.ipv6.conf.all.forwarding: it resets accept_ra/autoconf on every interface; enable IPv6 forwarding per interface',
      'EPERM',
    );
  }
  return `${PROC_SYS}net/ipv6/conf/${ifname}/forwarding`;
}

/** Throws for writes that must never happen (net.ipv6.conf.all.forwarding). */
export function checkSysctlWrite(path: string): void {
  if (path === PROC_SYS + FORBIDDEN) {
    throw new PlatformError(
      'refusing to set net.ipv6.conf.all.forwarding: it resets accept_ra/autoconf on every interface; enable IPv6 forwarding per interface',
      'EPERM',
    );
  }
}

function ioError(verb: 'read' | 'write', key: string, path: string, error: unknown): IoError {
  const code = (error as NodeJS.ErrnoException | undefined)?.code ?? 'EIO';
  const reason = (error as Error | undefined)?.message ?? String(error);
  return new IoError(`cannot ${verb} sysctl ${key} (${path}): ${reason}`, code);
}

/** The value of a sysctl, trimmed (the kernel ends it with a newline). */
export function readSysctlSync(key: string): string {
  const path = sysctlPath(key);
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (error) {
    throw ioError('read', key, path, error);
  }
}

export function setSysctlSync(key: string, value: string): void {
  const path = sysctlPath(key);
  checkSysctlWrite(path);
  try {
    writeFileSync(path, value);
  } catch (error) {
    throw ioError('write', key, path, error);
  }
}

/** The value of a sysctl, trimmed. */
export async function readSysctl(key: string): Promise<string> {
  const path = sysctlPath(key);
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch (error) {
    throw ioError('read', key, path, error);
  }
}

/** Write a sysctl (the value as given; the kernel accepts it with or without a newline). */
export async function setSysctl(key: string, value: string): Promise<void> {
  const path = sysctlPath(key);
  checkSysctlWrite(path);
  try {
    await writeFile(path, value);
  } catch (error) {
    throw ioError('write', key, path, error);
  }
}

/** net.ipv6.conf.<ifname>.forwarding = 1 / 0, for this one interface. */
export async function setIpv6Forwarding(ifname: string, on: boolean): Promise<void> {
  const path = ipv6ForwardingPath(ifname);
  try {
    await writeFile(path, on ? '1' : '0');
  } catch (error) {
    throw ioError('write', `net.ipv6.conf.${ifname}.forwarding`, path, error);
  }
}
