/**
 * Typed errors of the platform layer, the kinds the reference system uses:
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
