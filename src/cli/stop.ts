// One way every long-running command stops. The first SIGINT/SIGTERM, or the death of the
// kvgate process that spawned this one (KVGATE_PARENT_PID, see src/worker/parent_watch.ts),
// runs `stop` once and exits 0 (1 if it failed); a second signal exits at once.

import type { Logger } from '../observability/log.js';
import { parentPidFromEnv, watchParent } from '../worker/parent_watch.js';

export interface StopState {
  readonly stopping: boolean;
}

// `parentGone` tells `stop` that nobody is left to wait for (a short drain is enough).
export function stopOnSignals(log: Logger, stop: (reason: string, parentGone: boolean) => Promise<void>): StopState {
  const state = { stopping: false };
  const begin = (reason: string, parentGone: boolean) => {
    if (state.stopping) {
      if (parentGone) return;
      log.warn('second signal: exiting now', { signal: reason });
      process.exit(1);
    }
    state.stopping = true;
    log.info('shutting down', { reason });
    stop(reason, parentGone).then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error('shutdown failed', { error: (err as Error)?.message ?? String(err) });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => begin('SIGINT', false));
  process.on('SIGTERM', () => begin('SIGTERM', false));
  const parent = parentPidFromEnv();
  if (parent !== null) watchParent(parent, () => begin(`parent process ${parent} gone`, true));
  return state;
}
