// The one uWebSockets.js loader. The npm package silently falls back to a slow JS
// implementation when its native build does not load (reference/deps.md §3); kvgate
// never runs on that fallback, so this loads the native binary directly and fails loudly.

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as UwsTypes from '@trufflesuite/uws-js-unofficial';

const require = createRequire(import.meta.url);
const pkgDir = dirname(require.resolve('@trufflesuite/uws-js-unofficial/package.json'));
const binary = join(pkgDir, 'binaries', `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`);

function load(): typeof UwsTypes {
  try {
    return require(binary) as typeof UwsTypes;
  } catch (err) {
    throw new Error(
      `uWebSockets.js native build did not load (${binary}): ${(err as Error).message}. ` +
        'kvgate needs Node 20 on linux-x64/arm64 with glibc >= 2.27 and refuses the JS fallback (README, "Node versions and the HTTP server").',
      { cause: err },
    );
  }
}

export const uws = load();
export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, us_listen_socket } from '@trufflesuite/uws-js-unofficial';
