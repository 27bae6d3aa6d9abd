// `kvgate serve`: the OpenAI-compatible frontend in front of SGLang HTTP engines
// (--engine-urls). Reads the engines' model cards, loads the tokenizer and chat template
// once, serves until SIGINT/SIGTERM, then drains in-flight streams before exiting.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelCard } from '../../discovery/model_card.js';
import { SglangHttpEngine } from '../../engine/sglang_http.js';
import { KvgateError } from '../../errors.js';
import { loadServedModel, startFrontend } from '../../frontend/frontend.js';
import { StaticWorkerSet } from '../../frontend/worker_set.js';
import { createLogger, type LogLevel, type Logger } from '../../observability/log.js';
import { parseCommandLine } from '../config.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Model cards of the engines that answer, waiting up to `waitMs` for the first one.
async function readCards(engines: SglangHttpEngine[], waitMs: number, logger: Logger): Promise<ModelCard[]> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const results = await Promise.allSettled(engines.map((e) => e.modelCard()));
    const cards = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (cards.length > 0 || Date.now() >= deadline) {
      results.forEach((r, i) => {
        if (r.status === 'rejected') logger.warn('engine did not answer /server_info', { engine: engines[i]!.url, error: String(r.reason?.message ?? r.reason) });
      });
      return cards;
    }
    await sleep(500);
  }
}

export async function run(argv: string[]): Promise<void> {
  const { options: o } = parseCommandLine('serve', argv);
  const logger = createLogger(o.logLevel as LogLevel, { role: 'frontend' });
  const urls = o.engineUrls ?? [];
  if (urls.length === 0) throw new KvgateError('invalid_config', 'no engines: pass --engine-urls http://host:port[,...] (SGLang or `kvgate mocker` servers)');
  for (const u of urls) {
    if (!/^https?:\/\/[^/]+/.test(u)) throw new KvgateError('invalid_config', `--engine-urls: '${u}' is not an http(s) URL`);
  }
  const engines = urls.map((u) => new SglangHttpEngine(u));
  const cards = await readCards(engines, o.engineWait * 1000, logger);
  const name = o.servedModelName ?? cards[0]?.servedModelName;
  if (name === undefined) throw new KvgateError('invalid_config', 'no engine answered and no --served-model-name was given');
  const lengths = cards.map((c) => c.contextLength).filter((n) => n > 0);
  // An engine's own tokenizer directory, when it is on this machine.
  const engineTokenizer = cards.map((c) => c.tokenizerPath).find((p) => existsSync(join(p, 'tokenizer.json')));
  const model = loadServedModel(
    { name, tokenizerPath: o.tokenizerPath ?? o.modelPath ?? engineTokenizer, chatTemplatePath: o.chatTemplate, contextLength: o.contextLength },
    lengths.length > 0 ? Math.min(...lengths) : 0,
  );
  const workers = new StaticWorkerSet(
    engines.map((engine) => ({ name: engine.url, model: name, engine })),
    { healthIntervalMs: o.healthCheckInterval * 1000 },
  );
  const frontend = await startFrontend(
    {
      host: o.host,
      port: o.port,
      models: [model],
      apiKeys: o.apiKey ?? [],
      maxBodyBytes: o.maxBodyBytes,
      shutdownTimeoutMs: o.shutdownTimeout * 1000,
      logger,
    },
    workers,
  );
  logger.info('serving', { url: frontend.url, model: name, contextLength: model.contextLength, tokenizer: model.preprocessor.modelDir, engines: urls });
  // The one line on stdout: scripts and tests wait for it.
  process.stdout.write(`kvgate serve: listening on ${frontend.url}\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('shutting down: draining in-flight requests', { signal, inflight: frontend.inflight(), deadlineSeconds: o.shutdownTimeout });
    void frontend
      .close()
      .then(() => workers.close())
      .then(() => {
        logger.info('stopped');
        process.exit(0);
      });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}
