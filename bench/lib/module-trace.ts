/** `node --import dist/bench/lib/module-trace.js`: registers the hooks that note each module loaded. */
import { register } from 'node:module';

register('./module-trace-hooks.js', import.meta.url);
