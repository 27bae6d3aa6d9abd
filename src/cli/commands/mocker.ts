// `kvgate mocker`: a simulated SGLang engine as a process. Takes SGLang's launch_server flags (the
// ones that matter to a simulation, and the common ones it ignores), prints one ready line on
// stdout, and on SIGTERM/SIGINT stops accepting, drains or aborts in-flight requests, closes its
// sockets and exits. Started by `kvgate worker` (KVGATE_PARENT_PID set), it does the same when
// the worker is gone, even killed hard.

import { startMocker } from '../../mocker/index.js';
import type { MockerOptions } from '../../mocker/options.js';
import { createLogger, type LogFormat, type LogLevel } from '../../observability/log.js';
import { parseCommandLine } from '../../config.js';
import { stopOnSignals } from '../stop.js';

const LEVELS: Record<string, LogLevel> = { debug: 'debug', info: 'info', warn: 'warn', warning: 'warn', error: 'error', critical: 'error' };

export async function run(argv: string[]): Promise<void> {
  const { options } = parseCommandLine('mocker', argv);
  const logger = createLogger({ level: LEVELS[options.logLevel] ?? 'info', format: options.logFormat as LogFormat }, { role: 'mocker' });
  const mocker = await startMocker(options as Partial<MockerOptions>, logger);
  await mocker.ready;
  logger.info('serving', {
    url: mocker.url,
    model: options.servedModelName ?? options.modelPath,
    dpSize: mocker.dpSize,
    pageSize: options.pageSize,
    kvEventPorts: mocker.kvEventPorts,
    kvReplayPorts: mocker.kvReplayPorts,
    bootstrapPort: mocker.bootstrapPort,
    textTokenization: 'one id per UTF-8 byte (the mocker has no tokenizer)',
  });
  // The one line on stdout: scripts and tests wait for it.
  const extras = [
    mocker.kvEventPorts.length ? ` kv-events=${mocker.kvEventPorts.join(',')}` : '',
    mocker.kvReplayPorts.length ? ` kv-replay=${mocker.kvReplayPorts.join(',')}` : '',
    mocker.bootstrapPort !== null ? ` bootstrap=${mocker.bootstrapPort}` : '',
  ].join('');
  process.stdout.write(`kvgate mocker: listening on ${mocker.url}${extras}\n`);

  stopOnSignals(logger, () => mocker.close());
}
