/**
 * Module hooks that note every file module a process loads (main thread and
 * workers) in the file MODULE_TRACE_FILE names, one URL a line. Loaded by
 * module-trace.ts through `node --import`; the hooks run on their own thread,
 * so a traced process is counted, never measured for memory.
 */
import { appendFileSync } from 'node:fs';

type NextLoad = (url: string, context: unknown) => Promise<unknown>;

export async function load(url: string, context: unknown, nextLoad: NextLoad): Promise<unknown> {
  const traceFile = process.env['MODULE_TRACE_FILE'];
  if (traceFile !== undefined && url.startsWith('file:')) appendFileSync(traceFile, `${url}\n`);
  return nextLoad(url, context);
}
