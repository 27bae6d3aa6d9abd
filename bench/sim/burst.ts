// The burst case of the issue: 16 requests sharing one new 2,048-token prefix arrive together
// (each with its own 128-token question). With events only after prefill, an exact-event
// router has seen nothing of the prefix when the burst is routed.

import { sharedPrefix, GSP_DEFAULTS, type Workload } from '../../src/bench/workloads.js';

export function burstWorkload(seed: number): Workload {
  return sharedPrefix({ ...GSP_DEFAULTS, groups: 1, promptsPerGroup: 16, ratePerSec: Infinity, seed });
}
