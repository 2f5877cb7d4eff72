/**
 * The error type of the overlay node. Its message is what a control client
 * sees verbatim in `{"type":"Err","message":…}` (the seeds' OverlaydError::Other
 * displays as exactly its message), so messages name the thing that failed.
 */
export class OverlayError extends Error {
  override readonly name = 'OverlayError';
}
