// The worker agent: starts and supervises one engine process (SGLang, or kvgate's mocker),
// reads its model card, announces it to frontends on the control plane (uWS WebSocket),
// relays its KV events and publishes its load, and registers it for discovery. Frontends
// stream requests from the engine itself (the card's engineUrl): the agent is not on the
// token path, so it costs nothing per token.
//
// Life cycle:
//   start     check the engine args, reserve ports (the KV-event SUBs bind theirs), spawn the
//             engine, wait for GET /health = 200 (deadline: startupTimeoutMs), read the card,
//             listen, register. A first start that fails is an error (nothing to restart).
//   crash     the engine exited on its own: frontends reset its KV state (their streams on it
//             fail, which takes it out of routing), and it is restarted with exponential
//             backoff on fresh ports (a new Hello names the new engine URL); the count of
//             attempts resets once an engine stayed up for stableUptimeMs; past maxRestarts
//             the agent gives up (onFatal).
//   shutdown  (SIGTERM, or the parent gone) unregister, close the control plane (frontends
//             take the worker out of routing), let the engine finish what it runs (its own
//             load reports, up to drainTimeoutMs), stop the engine (SIGTERM, then SIGKILL
//             after stopGraceMs).

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { KvgateError } from '../errors.js';
import type { DirectEngine } from '../engine/client.js';
import { directEngine } from '../engine/direct_engine.js';
import type { EngineKind, ModelCard, WorkerRole } from '../engine/model_card.js';
import { instanceIdHex, type Registration, type Registry, type WorkerRecord } from '../discovery/discovery.js';
import { PROTOCOL_VERSION, type Frame, type RankLoad } from '../transport/frames.js';
import { KvRelay, type KvSource, type RelayPeer } from '../transport/kv_relay.js';
import { RequestPlaneServer } from '../transport/request_plane_server.js';
import { EVENT_HEARTBEAT_MS } from '../transport/event_heartbeat.js';
import { engineArgs, inspectUserArgs, KV_TOPIC, launchCommand, type EnginePorts, type EngineProtocol, type UserArgs } from './engine_args.js';
import { describeExit, EngineProcess } from './engine_process.js';
import { LoadPoller } from './load_poller.js';
import type { Logger } from '../observability/log.js';
import { readModelCard } from '../engine/model_card.js';
import { PARENT_PID_ENV } from './parent_watch.js';
import { freePort, freePortRange } from './ports.js';
import { urlHost } from '../net/url_host.js';
import { redactArgs, withoutSecrets } from '../security/secrets.js';

// How many times start() launches an engine that exits before it is healthy.
const START_ATTEMPTS = 3;

class EngineExitedEarly extends KvgateError {}

export interface WorkerAgentOptions {
  engine: EngineKind;
  // SGLang's HTTP API (default), or its gRPC API (the engine started with --grpc-mode).
  engineProtocol?: EngineProtocol;
  role: WorkerRole;
  // sglang.launch_server arguments, passed through untouched.
  engineArgs: string[];
  host: string;
  port: number;
  // The host frontends and decode engines use to reach this worker (default: host).
  advertiseHost?: string;
  migrationLimit: number;
  python: string;
  // How to run kvgate itself (for --engine mocker): [node, ...node flags, entry script].
  kvgate: string[];
  startupTimeoutMs: number;
  healthIntervalMs?: number;
  maxRestarts: number;
  restartBackoffMs: number;
  restartBackoffMaxMs: number;
  stableUptimeMs: number;
  drainTimeoutMs: number;
  stopGraceMs: number;
  loadIntervalMs: number;
  registry?: Registry;
  // Required of every frontend connecting to the request plane (401 without it).
  clusterToken?: string;
  // The request plane over TLS (wss://): certificate and key files.
  tls?: { cert: string; key: string };
  // The engine's --api-key; this agent sends it on its own engine requests too.
  engineApiKey?: string;
  // The event plane beyond the request plane (NATS: transport/nats_event_plane.ts): KV events
  // and load go there once, for every frontend, instead of over each frontend's connection.
  events?: RelayPeer;
  env?: NodeJS.ProcessEnv;
  log: Logger;
  // The engine could not be kept running (restarts exhausted).
  onFatal?: (err: Error) => void;
}

interface RunningEngine {
  proc: EngineProcess;
  client: DirectEngine;
  ports: EnginePorts;
  loads: LoadPoller;
}

export class WorkerAgent {
  readonly instanceId = randomBytes(8).readBigUInt64BE() >> 1n;
  card: ModelCard | null = null;
  private engine: RunningEngine | null = null;
  private readonly server: RequestPlaneServer;
  private readonly relay: KvRelay;
  private userArgs: UserArgs | null = null;
  private registration: Registration | null = null;
  private lastLoad: Frame | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private restarts = 0;
  // An engine being started (not yet healthy), so that shutdown can stop it too.
  private starting: EngineProcess | null = null;
  private stopping: Promise<void> | null = null;
  private readonly log: Logger;
  // Every port an engine of this worker was given: a new launch draws others, so a launch that
  // failed on a port another process took (or an engine that died holding one) is not handed
  // the same port again.
  private readonly usedPorts = new Set<number>();

  constructor(private readonly opts: WorkerAgentOptions) {
    this.log = opts.log;
    const events = opts.events;
    this.relay = new KvRelay({ instanceId: this.instanceId, log: this.log });
    this.server = new RequestPlaneServer({
      host: opts.host,
      port: opts.port,
      log: this.log,
      ...(opts.clusterToken !== undefined ? { token: opts.clusterToken } : {}),
      ...(opts.tls ? { tls: opts.tls } : {}),
      hello: () => this.hello(),
      onConnect: (peer) => {
        // With a separate event plane a new frontend gets every rank rebuilt there (the others
        // rebuild with it); its connection carries no events.
        if (events) for (const r of this.relay.tableSizes().keys()) this.relay.resync(events, r);
        else this.relay.addPeer(peer);
        if (this.lastLoad) peer.send(this.lastLoad);
      },
      onDisconnect: (peer) => this.relay.removePeer(peer),
      onResync: (peer, dpRank) => this.relay.resync(events ?? peer, dpRank),
      onDrain: (peer) => this.relay.drained(peer),
    });
    if (events) {
      this.relay.addPeer(events);
      // Loads go out only when they change: an idle worker re-sends its last one every
      // EVENT_HEARTBEAT_MS, so frontends can tell a quiet worker from one whose link is down.
      this.heartbeat = setInterval(() => {
        const report = this.lastLoad?.type === 'load' ? this.lastLoad.report : { instanceId: this.instanceId, ranks: [] };
        events.send({ type: 'load', report: { ...report, timestampMs: Date.now() } });
      }, EVENT_HEARTBEAT_MS);
      this.heartbeat.unref();
    }
  }

  get url(): string {
    return `${this.opts.tls ? 'wss' : 'ws'}://${urlHost(this.opts.advertiseHost ?? this.opts.host)}:${this.server.port}`;
  }

  // The engine's PID (tests, diagnostics).
  get enginePid(): number | undefined {
    return this.engine?.proc.pid;
  }

  async start(): Promise<void> {
    this.userArgs = inspectUserArgs(this.opts.engineArgs, this.opts.role);
    // Ports are picked free, then released for the engine to bind: another process can take
    // one in between, and the engine then exits at once. Start again on fresh ports a few times.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.launchEngine();
        break;
      } catch (err) {
        if (!(err instanceof EngineExitedEarly) || attempt >= START_ATTEMPTS || this.stopping) throw err;
        this.log.warn(`${err.message}: starting again on fresh ports (attempt ${attempt + 1} of ${START_ATTEMPTS})`);
      }
    }
    try {
      await this.server.listen();
    } catch (err) {
      await this.shutdown();
      throw err;
    }
    this.registration = this.opts.registry?.register(this.record()) ?? null;
    this.log.info(`serving ${this.card!.servedModelName} (${this.opts.role}) on ${this.url}`);
  }

  // `drainTimeoutMs` overrides the configured drain deadline (a shorter one when the parent died).
  shutdown(drainTimeoutMs = this.opts.drainTimeoutMs): Promise<void> {
    this.stopping ??= this.stop(drainTimeoutMs);
    return this.stopping;
  }

  private hello(): Frame & { type: 'hello' } {
    return { type: 'hello', protocolVersion: PROTOCOL_VERSION, instanceId: this.instanceId, card: this.card! };
  }

  private record(): WorkerRecord {
    return { instanceId: instanceIdHex(this.instanceId), url: this.url, card: this.card! };
  }

  private async reservePorts(info: UserArgs): Promise<EnginePorts> {
    const taken = this.usedPorts;
    const take = (p: number) => (taken.add(p), p);
    const http = take(await freePort('127.0.0.1', taken));
    const kvReplay = await freePortRange(info.dpSize, '127.0.0.1', taken);
    for (let r = 0; r < info.dpSize; r++) taken.add(kvReplay + r);
    const bootstrap = this.opts.role === 'prefill' && info.bootstrapPort === null ? take(await freePort('127.0.0.1', taken)) : null;
    // The SUB sockets bind their ports now, so nothing can take them before the engine connects.
    for (let attempt = 0; ; attempt++) {
      const kvEvents = await freePortRange(info.dpSize, '127.0.0.1', taken);
      const sources: KvSource[] = Array.from({ length: info.dpSize }, (_, dpRank) => ({
        dpRank,
        endpoint: `tcp://127.0.0.1:${kvEvents + dpRank}`,
        bind: true,
        replayEndpoint: `tcp://127.0.0.1:${kvReplay + dpRank}`,
        topic: KV_TOPIC,
      }));
      try {
        await this.relay.prepare(sources);
        for (let r = 0; r < info.dpSize; r++) taken.add(kvEvents + r);
        return { http, kvEvents, kvReplay, bootstrap };
      } catch (err) {
        if (attempt >= 10) throw err;
      }
    }
  }

  // Starts an engine and makes it the current one; on failure nothing is left running.
  private async launchEngine(): Promise<void> {
    const info = this.userArgs!;
    const ports = await this.reservePorts(info);
    const launch = launchCommand(
      { engine: this.opts.engine, python: this.opts.python, kvgate: this.opts.kvgate },
      engineArgs(this.opts.engineArgs, info, this.opts.role, ports, this.opts.engineProtocol, this.opts.host, this.opts.engineApiKey),
      // The mocker exits when this worker is gone, even SIGKILLed (see parent_watch.ts).
      // kvgate's own secrets stay out of the engine's environment (its key comes as --api-key).
      { ...withoutSecrets(this.opts.env ?? process.env), [PARENT_PID_ENV]: String(process.pid) },
    );
    this.log.info(`starting engine: ${[launch.command, ...redactArgs(launch.args)].map(shellQuote).join(' ')}`);
    const proc = new EngineProcess(launch, this.log);
    this.starting = proc;
    // The card names where frontends stream from: this engine, on the worker's address.
    const scheme = this.opts.engineProtocol === 'grpc' ? 'grpc' : 'http';
    const client: DirectEngine = directEngine(`${scheme}://${urlHost(this.opts.host)}:${ports.http}`, this.opts.engineApiKey);
    const get = (path: string) => client.getJson(path);
    let card: ModelCard;
    try {
      await this.waitHealthy(proc, client);
      card = await readModelCard(get, {
        role: this.opts.role,
        engine: this.opts.engine,
        migrationLimit: this.opts.migrationLimit,
        advertiseHost: this.opts.advertiseHost ?? this.opts.host,
        engineUrl: `${scheme}://${urlHost(this.opts.advertiseHost ?? this.opts.host)}:${ports.http}`,
      });
      if (card.dpSize !== info.dpSize) {
        throw new KvgateError('engine_error', `engine reports dp_size ${card.dpSize}, but its arguments gave ${info.dpSize}`);
      }
      if (this.stopping) throw new KvgateError('shutting_down', 'the worker is shutting down');
    } catch (err) {
      await proc.stop(this.opts.stopGraceMs);
      this.relay.detach();
      throw err;
    } finally {
      this.starting = null;
    }
    this.log.info(`engine ready (pid ${proc.pid}, ${client.url}): ${card.servedModelName}, page size ${card.pageSize}, ${card.totalKvBlocks} KV blocks x ${card.dpSize} dp rank(s)`);
    const loads = new LoadPoller(
      get,
      card,
      (ranks) => this.publishLoad(ranks),
      (message) => this.log.warn(message),
    );
    this.card = card;
    this.engine = { proc, client, ports, loads };
    this.relay.start();
    loads.start(this.opts.loadIntervalMs);
    void proc.exited.then((exit) => this.onEngineExit(proc, describeExit(exit)));
  }

  private async waitHealthy(proc: EngineProcess, client: DirectEngine): Promise<void> {
    const deadline = Date.now() + this.opts.startupTimeoutMs;
    for (;;) {
      if (proc.exit) throw new EngineExitedEarly('engine_error', `engine ${describeExit(proc.exit)} before it became healthy`);
      if (await client.healthy()) return;
      if (Date.now() >= deadline) {
        const probe = this.opts.engineProtocol === 'grpc' ? 'the HealthCheck RPC' : 'GET /health';
        throw new KvgateError('engine_timeout', `engine did not become healthy (${probe}) within ${this.opts.startupTimeoutMs / 1000} s`);
      }
      await Promise.race([sleep(this.opts.healthIntervalMs ?? 500), proc.exited]);
    }
  }

  private publishLoad(ranks: RankLoad[]): void {
    this.lastLoad = { type: 'load', report: { instanceId: this.instanceId, timestampMs: Date.now(), ranks } };
    if (this.opts.events) this.opts.events.send(this.lastLoad);
    else this.server.broadcast(this.lastLoad);
  }

  private onEngineExit(proc: EngineProcess, how: string): void {
    if (this.stopping || this.engine?.proc !== proc) return;
    this.log.error(`engine (pid ${proc.pid}) ${how}`);
    const uptime = Date.now() - proc.startedAt;
    // Its open streams (frontend to engine) fail on their own as the connections drop.
    this.engine.loads.stop();
    this.engine = null;
    this.lastLoad = null;
    this.relay.detach();
    if (uptime >= this.opts.stableUptimeMs) this.restarts = 0;
    void this.restartLoop(proc);
  }

  private async restartLoop(dead: EngineProcess): Promise<void> {
    // What the dead engine left of its process group goes first.
    await dead.stop(this.opts.stopGraceMs);
    while (!this.stopping) {
      if (this.restarts >= this.opts.maxRestarts) {
        const err = new KvgateError('engine_error', `engine failed ${this.restarts} restart(s) in a row; giving up`);
        this.log.error(err.message);
        this.opts.onFatal?.(err);
        return;
      }
      const delay = Math.min(this.opts.restartBackoffMs * 2 ** this.restarts, this.opts.restartBackoffMaxMs);
      this.restarts++;
      this.log.warn(`restarting the engine in ${delay} ms (attempt ${this.restarts} of ${this.opts.maxRestarts})`);
      await sleep(delay);
      if (this.stopping) return;
      try {
        await this.launchEngine();
      } catch (err) {
        this.log.error(`engine restart failed: ${(err as Error).message}`);
        continue;
      }
      if (this.stopping) return;
      // The card may differ (e.g. KV capacity): tell connected frontends and discovery.
      for (const peer of this.server.connectedPeers()) peer.send(this.hello());
      this.registration?.update(this.record());
      return;
    }
  }

  // Resolves true once the engine reports nothing running or queued on any rank (checked
  // after a moment, for requests frontends sent just before they saw the connection close),
  // false at the deadline. An engine that reports no load is not waited for.
  private async engineIdle(engine: RunningEngine, deadlineMs: number): Promise<boolean> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      await sleep(Math.min(100, Math.max(0, deadline - Date.now())));
      const ranks = await engine.loads.poll();
      if (!ranks || ranks.every((r) => r.running === 0 && r.queued === 0)) return true;
      if (Date.now() >= deadline) return false;
    }
  }

  private async stop(drainTimeoutMs: number): Promise<void> {
    this.log.info('shutting down: unregistering and draining in-flight requests');
    // Withdrawn before the control plane closes, so frontends stop routing here first.
    await this.registration?.unregister();
    await this.server.close();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.relay.close();
    if (this.engine && !(await this.engineIdle(this.engine, drainTimeoutMs))) {
      this.log.warn(`the engine still runs requests after ${drainTimeoutMs} ms; stopping it`);
    }
    await this.starting?.stop(this.opts.stopGraceMs);
    const engine = this.engine;
    this.engine = null;
    if (engine) {
      engine.loads.stop();
      await engine.client.close();
      const exit = await engine.proc.stop(this.opts.stopGraceMs);
      this.log.info(`engine stopped (${describeExit(exit)})`);
    }
  }
}

function shellQuote(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}
