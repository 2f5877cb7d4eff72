/**
 * Typed errors of the platform layer, one kind per way a step can fail:
 * each names the interface, file or operation involved.
 */
export class PlatformError extends Error {
  override name = 'PlatformError';
  constructor(
    message: string,
    /** The errno name (e.g. 'EPERM') when a system call failed. */
    readonly code?: string,
  ) {
    super(message);
  }
}

export class NotFoundError extends PlatformError {
  override name = 'NotFoundError';
}

export class PermissionDeniedError extends PlatformError {
  override name = 'PermissionDeniedError';
}

export class InterfaceNotFoundError extends PlatformError {
  override name = 'InterfaceNotFoundError';
}

export class InterfaceInUseError extends PlatformError {
  override name = 'InterfaceInUseError';
}

export class IoError extends PlatformError {
  override name = 'IoError';
}

/**
 * An RTNETLINK request failed: `errno` is the kernel's error number (positive,
 * e.g. 17 for EEXIST; `code` holds its name) and `operation` says what was
 * being done ("route add 10.0.0.0/24 dev eth0", "veth create", ...).
 */
export class NetlinkError extends PlatformError {
  override name = 'NetlinkError';
  constructor(
    message: string,
    /** Positive errno (0 when the failure is not a kernel error, e.g. a malformed reply or a timeout). */
    readonly errno: number,
    /** The operation that failed, as words. */
    readonly operation: string,
    code?: string,
  ) {
    super(message, code);
  }
}

/**
 * A network-configuration step failed: egress detection found nothing usable, a
 * route dump failed, an interface name is unusable for SO_BINDTODEVICE, ...
 */
export class NetworkConfigError extends PlatformError {
  override name = 'NetworkConfigError';
  constructor(message: string, code?: string, options?: { cause?: unknown }) {
    super(message, code);
    if (options !== undefined && 'cause' in options) this.cause = options.cause;
  }
}
