// `kvgate worker --engine sglang|mocker [--role agg|prefill|decode] ... -- <sglang args>`:
// starts and supervises one engine and serves it on the request plane (src/worker/agent.ts).
// Prints one ready line on stdout with the request-plane URL; SIGTERM/SIGINT drain in-flight
// requests and stop the engine (a second signal stops at once). Started by `kvgate serve`
// (KVGATE_PARENT_PID set), it does the same when serve is gone, even killed hard.

import { EtcdRegistry } from '../../discovery/etcd.js';
import { NatsEventPublisher, natsServers } from '../../transport/nats_event_plane.js';
import { createLogger, type LogFormat, type LogLevel } from '../../observability/log.js';
import type { EngineKind, WorkerRole } from '../../engine/model_card.js';
import { WorkerAgent } from '../../worker/agent.js';
import type { EngineProtocol } from '../../worker/engine_args.js';
import { parseCommandLine } from '../../config.js';
import { clusterSecrets, tlsFiles } from '../../security/secrets.js';
import { selfCommand } from '../self.js';
import { stopOnSignals } from '../stop.js';

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);

export async function run(argv: string[]): Promise<void> {
  const { options: o, passthrough } = parseCommandLine('worker', argv);
  const log = createLogger({ level: o.logLevel as LogLevel, format: o.logFormat as LogFormat }, { role: 'worker' });
  const secrets = clusterSecrets(o);
  const tls = tlsFiles('tls', undefined, o.tlsCertFile, o.tlsKeyFile);
  const s = (seconds: number) => Math.round(seconds * 1000);
  // Beyond loopback, the request plane needs the cluster token and the engine its API key,
  // or anyone who reaches them can read the card and generate: the operator's explicit choice.
  const open = [secrets.clusterToken === undefined ? 'the request plane (no cluster token)' : null, secrets.engineApiKey === undefined && o.engineProtocol === 'http' ? 'the engine (no engine API key)' : null];
  if (o.engineProtocol === 'grpc') open.push('the engine (SGLang\'s gRPC API has no API key)');
  const unprotected = open.filter((x): x is string => x !== null);
  if (!isLoopback(o.host) && unprotected.length > 0) {
    log.warn(
      `listening on ${o.host}, beyond this machine, WITHOUT AUTHENTICATION of ${unprotected.join(' and ')}: anyone who reaches them can read the model card or generate on this engine. ` +
        'Set KVGATE_CLUSTER_TOKEN and KVGATE_ENGINE_API_KEY (or --cluster-token-file, --engine-api-key-file), or keep --host 127.0.0.1 unless a firewall admits only your frontends.',
      { host: o.host, unauthenticated: true },
    );
  }
  // Registers once the engine is up; withdraws (revokes its lease) on shutdown.
  const registry = o.discovery === undefined ? undefined : new EtcdRegistry({ url: o.discovery, log, access: secrets.etcd });
  if (o.eventPlane !== undefined) natsServers(o.eventPlane);
  // Waits for NATS (a worker whose events cannot go anywhere would route blind).
  if (o.eventPlane !== undefined) log.info(`connecting to the event plane ${o.eventPlane} (waiting until it answers)`);
  const events = o.eventPlane === undefined ? undefined : await NatsEventPublisher.connect(o.eventPlane, { log, access: secrets.nats, ...(secrets.clusterToken !== undefined ? { clusterToken: secrets.clusterToken } : {}) });
  const agent = new WorkerAgent({
    engine: o.engine as EngineKind,
    engineProtocol: o.engineProtocol as EngineProtocol,
    role: o.role as WorkerRole,
    engineArgs: passthrough,
    host: o.host,
    port: o.port,
    advertiseHost: o.advertiseHost,
    migrationLimit: o.migrationLimit,
    python: o.python,
    kvgate: selfCommand(),
    startupTimeoutMs: s(o.startupTimeout),
    maxRestarts: o.maxRestarts,
    restartBackoffMs: s(o.restartBackoff),
    restartBackoffMaxMs: 30_000,
    stableUptimeMs: 60_000,
    drainTimeoutMs: s(o.drainTimeout),
    stopGraceMs: s(o.stopGrace),
    loadIntervalMs: s(o.loadInterval),
    registry,
    ...(secrets.clusterToken !== undefined ? { clusterToken: secrets.clusterToken } : {}),
    ...(secrets.engineApiKey !== undefined ? { engineApiKey: secrets.engineApiKey } : {}),
    ...(tls ? { tls: { cert: tls.cert!, key: tls.key! } } : {}),
    events,
    log,
    onFatal: () => void agent.shutdown().finally(() => process.exit(1)),
  });

  stopOnSignals(log, (_reason, parentGone) => {
    log.info('draining in-flight requests, then stopping the engine');
    // Without a parent the frontends that sent requests went with it: a short drain is enough.
    return agent.shutdown(parentGone ? Math.min(s(o.drainTimeout), 2000) : undefined).finally(() => Promise.all([registry?.close(), events?.close()]));
  });

  await agent.start();
  const card = agent.card!;
  console.log(`kvgate worker ready: ${agent.url} model=${card.servedModelName} role=${card.role} engine=${o.engine} engine_protocol=${o.engineProtocol} engine_pid=${agent.enginePid}`);
}
