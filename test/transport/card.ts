// The model card the request-plane tests' worker announces.
import type { ModelCard } from '../../src/engine/model_card.js';

export const card: ModelCard = {
  servedModelName: 'test-model',
  modelPath: '/models/test',
  tokenizerPath: '/models/test',
  contextLength: 4096,
  pageSize: 16,
  maxTotalNumTokens: 8192,
  totalKvBlocks: 512,
  maxRunningRequests: 64,
  dpSize: 1,
  role: 'agg',
  bootstrapHost: null,
  bootstrapPort: null,
  migrationLimit: 0,
  kvEvents: true,
  engine: 'mocker',
  engineVersion: null,
  engineUrl: 'http://127.0.0.1:1',
};
