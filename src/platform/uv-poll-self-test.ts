/**
 * A start-up check of the main-thread poll mode: libuv's symbols resolve
 * through koffi, a uv_poll_t on a pipe calls back on the main thread when a
 * byte arrives, and closes cleanly. Fails first, naming the step, instead of
 * a device that silently never receives.
 */
import { PlatformError } from './errors.js';
import { O_CLOEXEC, O_NONBLOCK, lastErrno, loadLibc } from './libc.js';
import { UvPoll, UV_READABLE, uvPollHandleSize } from './uv-poll.js';
import { errorMessage } from './error-message.js';

/** How long the probe byte may take to be reported before the check fails. */
const SELF_TEST_TIMEOUT_MS = 2000;

export async function selfTestUvPoll(): Promise<void> {
  const fail = (step: string, detail: string) => new PlatformError(`main-thread poll self-test failed at ${step}: ${detail} (TSWG_MAIN_POLL=0 runs without it)`);
  try {
    uvPollHandleSize();
  } catch (error) {
    throw fail('binding libuv', errorMessage(error));
  }
  const libc = loadLibc();
  const fds = new Int32Array(2);
  if (libc.pipe2(fds, O_CLOEXEC | O_NONBLOCK) !== 0) throw fail('pipe2', lastErrno().code);
  let poll: UvPoll | null = null;
  try {
    let failure: unknown = null;
    const reported = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(fail('waiting for the callback', `nothing in ${SELF_TEST_TIMEOUT_MS} ms`)), SELF_TEST_TIMEOUT_MS);
      poll = new UvPoll(
        fds[0]!,
        (status, events) => {
          clearTimeout(timer);
          if (status !== 0 || (events & UV_READABLE) === 0) reject(fail('the callback', `status ${status}, events ${events}`));
          else resolve();
        },
        (error) => (failure = error),
      );
      poll.start(UV_READABLE);
    });
    if (libc.write(fds[1]!, Uint8Array.of(1), 1) !== 1) throw fail('write', lastErrno().code);
    await reported;
    if (failure !== null) throw fail('the callback', String(failure));
  } finally {
    await (poll as UvPoll | null)?.close();
    for (const fd of fds) libc.close(fd);
  }
}
