/**
 * The probe's view of the platform's uv_poll binding (src/platform/uv-poll.ts):
 * the same handle, with a callback error printed (the platform's handle
 * catches every exception, so one can no longer silence it).
 */
import { UvPoll as PlatformUvPoll } from '../../src/platform/uv-poll.js';

export { UV_READABLE, UvPollError } from '../../src/platform/uv-poll.js';

export class UvPoll extends PlatformUvPoll {
  constructor(fd: number, onEvent: (status: number, events: number) => void) {
    super(fd, onEvent, (error) => console.error(`uv_poll callback threw (caught): ${error instanceof Error ? error.message : String(error)}`));
  }
}
