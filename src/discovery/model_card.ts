// A worker's model card: what a frontend needs to preprocess for, route to and pair this
// worker. The worker agent reads every field from its engine (src/worker/model_card.ts);
// it travels in the request plane's Hello frame and in discovery records.

export type WorkerRole = 'agg' | 'prefill' | 'decode';

export interface ModelCard {
  servedModelName: string;
  modelPath: string;
  // Where the tokenizer comes from: a local directory or a hub id.
  tokenizerPath: string;
  contextLength: number;
  // The engine's page size = the block size of its KV events and of the router's hashing.
  pageSize: number;
  // KV capacity per dp rank, in tokens and in blocks (ceil(tokens / pageSize)).
  maxTotalNumTokens: number;
  totalKvBlocks: number;
  maxRunningRequests: number | null;
  dpSize: number;
  role: WorkerRole;
  // Prefill workers: the engine's bootstrap server that decode engines fetch KV from.
  bootstrapHost: string | null;
  bootstrapPort: number | null;
  migrationLimit: number;
  // Whether the engine publishes KV events (false: the router must predict the cache).
  kvEvents: boolean;
  engine: 'sglang' | 'mocker';
  engineVersion: string | null;
}
