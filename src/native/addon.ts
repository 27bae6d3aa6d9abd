// The one loader of the native addon (native/binding, typed by native/binding/index.d.ts).
// cmake-js (`npm run build:native`) builds it to build/native/Release/kvgate.node, node-gyp
// (`npm run build:gyp`) to build/Release/kvgate.node; the first that exists is loaded.
// KVGATE_ADDON=<path> loads that build instead (the ASan build and the mutation check run
// the native suites against their own addons this way). The addon throws KvgateErrors, so
// its errors reach the registry (src/errors.ts) like any other.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as Addon from '../../native/binding/index.js';
import { KvgateError } from '../errors.js';

export type KvgateAddon = typeof Addon;
export type {
  KvEventBatchObject,
  KvEventObject,
  KvRouter,
  KvRouterOptions,
  KvRouterStats,
  RouterPolicy,
  StoreStatus,
  TransferCoordinator,
  TransferCoordinatorOptions,
  BpeEncoder,
  BpeEncoderOptions,
  TransferPairStats,
  UnitInfo,
} from '../../native/binding/index.js';

// The repository root: two levels up from src/native/ and from dist/native/ alike.
const root = fileURLToPath(new URL('../../', import.meta.url));
const override = process.env['KVGATE_ADDON'];
export const ADDON_PATHS: readonly string[] = override
  ? [override]
  : [join(root, 'build', 'native', 'Release', 'kvgate.node'), join(root, 'build', 'Release', 'kvgate.node')];

function load(): KvgateAddon {
  const path = ADDON_PATHS.find((p) => existsSync(p));
  if (path === undefined) {
    throw new KvgateError(
      'ERR_NATIVE_ADDON',
      `the kvgate native addon is not built (looked for ${ADDON_PATHS.join(' and ')}); run \`npm run build:native\``,
    );
  }
  try {
    const mod = createRequire(import.meta.url)(path) as KvgateAddon;
    mod.setErrorClass(KvgateError);
    return mod;
  } catch (err) {
    throw new KvgateError(
      'ERR_NATIVE_ADDON',
      `the kvgate native addon at ${path} did not load (${(err as Error).message}); rebuild it with \`npm run build:native\``,
    );
  }
}

export const addon: KvgateAddon = load();

// The room state machine's numbers as values (the addon's frozen objects) and as types, so
// callers write RoomState.PrefillDone, not 1.
export const RoomState: typeof Addon.RoomState = addon.RoomState;
export type RoomState = Addon.RoomState;
export const RoomEvent: typeof Addon.RoomEvent = addon.RoomEvent;
export type RoomEvent = Addon.RoomEvent;
