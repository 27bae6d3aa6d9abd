// The KV router's cost settings by default, chosen by the fleet simulator's sweep across
// workloads and fleet sizes (`npm run sim -- sweep`, bench/README.md): the flags' defaults
// (src/config.ts) and KvWorkerSet's.

export const ROUTING_DEFAULTS = {
  // Weight of prefill blocks against decode blocks in the kv cost (Dynamo's default is 1).
  overlapWeight: 8,
  // Softmax temperature of the kv choice; 0 takes the lowest cost.
  temperature: 0,
  // What a block pending on a worker (routed there, not yet stored) takes off the cost; 0: off.
  pendingWeight: 16,
  // How long a routed prompt's blocks stay pending at most without the engine storing them.
  pendingTimeoutMs: 10_000,
  // Weight of the prompt's own uncached blocks, counted again beside the backlog they wait behind
  // (the prefill the request takes from the fleet): a prompt stays with its cached prefix behind a
  // short queue instead of recomputing it on an idle worker (`npm run sim -- own`); 0: Dynamo's cost.
  ownWeight: 8,
  // The own weight grows by this much per prompt the fleet has before its first token, per
  // worker: the prefill a request adds delays every prompt queued behind it, so a saturated
  // fleet keeps a prompt with its cached prefix rather than recompute it elsewhere; 0: fixed.
  // 2 is the simulator's pick across Mooncake at three KV sizes, shared prefix and multi-turn
  // (`npm run sim -- own-queue`, bench/README.md).
  ownQueueWeight: 2,
  // A prompt waits for a prefill its worker has queued when they share more than this share of
  // the prompt beyond what the worker caches (kvgate router's --cache-threshold default; the
  // simulator's holdSharedPrefill uses it too).
  prefillWaitShare: 0.3,
} as const;
