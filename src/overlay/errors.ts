/**
 * The error type of the overlay node. Its message is what a control client
 * sees verbatim in `{"type":"Err","message":…}`, nothing added, so messages name the thing that failed.
 */
export class OverlayError extends Error {
  override readonly name = 'OverlayError';
}
