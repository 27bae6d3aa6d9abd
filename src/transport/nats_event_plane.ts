// The event plane on NATS (`--event-plane nats://host:port[,host:port]`): a worker publishes
// its KV-event frames (kv_reset, and kv_batch: the engine's raw SGLang msgpack batch with
// instance id, dp rank and sequence) and its load reports once, on one subject per worker,
// and every frontend replica subscribes to all of them, so all route on the same view.
//
// Subjects: kvgate.events.<instance id, 16 hex digits>; the payload is the request plane's
// own flatbuffers frame (frames.ts), so a frontend feeds it to that worker's request-plane
// client, whose per-rank sequence check finds gaps. On a gap (a frontend that joined late,
// NATS dropped or was away) the frontend asks for a resync over the request plane, and the
// worker's relay rebuilds that rank on the subject (reset, then replay or snapshot) for all
// frontends: the others reset and rebuild too, which costs a burst of events, not state.
//
// While a gap's resync is pending the frontend routes that worker approximately
// (KvWorkerSet.onGap). With a cluster token every frame carries an HMAC tag
// (security/event_auth.ts): frontends drop and count frames without a good one.
//
// The worker's relay treats the subject as one more peer (KvRelay numbers batches per peer),
// and never drops: while NATS is away the client buffers what is published, and a frontend
// that still misses something sees the gap.

import { connect, type ConnectionOptions, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { KvgateError } from '../errors.js';
import { silentLogger, type Logger } from '../observability/log.js';
import { RemoteState, type RemoteHealth } from '../observability/remote_state.js';
import { Counter, type Registry } from 'prom-client';
import { EventAuth } from '../security/event_auth.js';
import type { NatsAccess } from '../security/secrets.js';
import { encodeFrame, type Frame } from './frames.js';
import { decodeRoutingEvent, encodeRoutingEvent, ROUTING_SUBJECT, type RoutingEvent } from './router_sync.js';

export const EVENTS_SUBJECT_PREFIX = 'kvgate.events.';

// `nats://h1:p1,h2:p2` -> ['h1:p1', 'h2:p2'].
export function natsServers(url: string): string[] {
  const m = /^nats:\/\/(.+)$/.exec(url);
  const hosts = m ? m[1]!.split(',').map((h) => h.trim()) : [];
  if (hosts.length === 0 || hosts.some((h) => !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(h))) {
    throw new KvgateError('invalid_config', `--event-plane: '${url}' is not nats://host:port[,host:port...]`);
  }
  return hosts;
}

export interface NatsOptions {
  log?: Logger;
  // User and password or token, TLS files (security/secrets.ts).
  access?: NatsAccess;
  // Called with false when the connection is lost, true when it is back.
  onState?: (connected: boolean) => void;
  // The cluster token: frames are tagged (publisher) and checked (subscriber); event_auth.ts.
  clusterToken?: string;
}

// The client's options for `access`: credentials, and TLS when any TLS file is given.
function natsAccess(access: NatsAccess = {}): Partial<ConnectionOptions> {
  const t = access.tls;
  return {
    ...(access.user !== undefined ? { user: access.user, pass: access.pass } : {}),
    ...(access.token !== undefined ? { token: access.token } : {}),
    ...(t ? { tls: { ...(t.ca ? { caFile: t.ca } : {}), ...(t.cert ? { certFile: t.cert, keyFile: t.key } : {}) } } : {}),
  };
}

// Refusals that trying again cannot mend: credentials, or a certificate that does not verify.
const fatal = (err: Error & { code?: unknown }) =>
  /authorization violation|authentication/i.test(err.message) || (typeof err.code === 'string' && /CERT|TLS|SELF_SIGNED|UNABLE_TO_VERIFY|AUTHORIZATION/i.test(err.code));

// Keeps trying the first connection (logged, with backoff) unless NATS refuses this client,
// and reconnects forever after; `state` follows.
async function open(url: string, name: string, state: RemoteState, o: NatsOptions): Promise<NatsConnection> {
  const log = o.log ?? silentLogger;
  let nc: NatsConnection;
  for (let wait = 250; ; wait = Math.min(wait * 2, 5000)) {
    try {
      nc = await connect({ servers: natsServers(url), name, maxReconnectAttempts: -1, reconnectTimeWait: 250, ...natsAccess(o.access) });
      break;
    } catch (err) {
      const e = err as Error;
      if (fatal(e)) throw new KvgateError('invalid_config', `--event-plane ${url}: ${e.message}`);
      log.warn(`nats: cannot connect to ${url} (${e.message}); retrying in ${wait} ms`);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
  state.up();
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect') {
        state.down(new Error(`disconnected from ${String(s.server ?? url)}`), 'reconnecting');
        o.onState?.(false);
      } else if (s.type === 'reconnect') {
        state.up();
        o.onState?.(true);
      }
    }
  })().catch(() => undefined);
  return nc;
}

const hex = (id: bigint) => id.toString(16).padStart(16, '0');

// The worker's side: a relay peer that publishes each frame on its worker's subject.
export class NatsEventPublisher {
  readonly id = -1;
  readonly closed = false;
  private dropped = 0;
  private constructor(
    private readonly nc: NatsConnection,
    private readonly log: Logger,
    private readonly auth: EventAuth | null,
  ) {}

  static async connect(url: string, o: NatsOptions = {}): Promise<NatsEventPublisher> {
    const log = o.log ?? silentLogger;
    const nc = await open(url, 'kvgate-worker', new RemoteState('nats', url, 'kvgate_event_plane', 'the event plane (NATS)', log), o);
    return new NatsEventPublisher(nc, log, o.clusterToken !== undefined ? new EventAuth(o.clusterToken) : null);
  }

  // A frame the client cannot take (its reconnect buffer is full, or it is closed) is
  // dropped: frontends see the gap and ask for a rebuild. Never throws into the relay.
  send(frame: Frame): void {
    const id = frame.type === 'kv_batch' || frame.type === 'kv_reset' ? frame.instanceId : frame.type === 'load' ? frame.report.instanceId : null;
    if (id === null) throw new KvgateError('internal_error', `a ${frame.type} frame is not an event-plane frame`);
    try {
      const subject = EVENTS_SUBJECT_PREFIX + hex(id);
      const bytes = encodeFrame(frame);
      this.nc.publish(subject, this.auth ? this.auth.seal(subject, bytes) : bytes);
    } catch (err) {
      if (this.dropped++ % 1000 === 0) this.log.warn(`nats: event frame dropped (${(err as Error).message}); ${this.dropped} so far`);
    }
  }

  // Always true: the relay must not park the subject as congested (it has no drain signal).
  trySend(frame: Frame): boolean {
    this.send(frame);
    return true;
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => undefined);
  }
}

// The frontend's side: every worker's events, with the worker's instance id (hex).
// While NATS is away the frontend routes those workers approximately (onState tells it;
// health() and the kvgate_event_plane_* metrics show the outage), and on reconnect it asks
// the workers for a rebuild and routes on events again.
export class NatsEventSubscriber {
  private subs: Subscription[] = [];
  private readonly rejected = new Counter({
    name: 'kvgate_event_plane_frames_rejected_total',
    help: 'Event-plane frames dropped because their cluster-token tag was missing or wrong, by subject kind',
    labelNames: ['kind'],
    registers: [],
  });
  private rejectedLogged = 0;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly state: RemoteState,
    private readonly auth: EventAuth | null,
    private readonly log: Logger,
  ) {}

  // The frame's bytes, or null (counted, logged now and then) when its tag does not verify.
  private verified(kind: 'events' | 'routing', subject: string, data: Uint8Array): Uint8Array | null {
    if (!this.auth) return data;
    const bytes = this.auth.open(subject, data);
    if (bytes) return bytes;
    this.rejected.inc({ kind });
    if (this.rejectedLogged++ % 1000 === 0) {
      this.log.warn(`nats: a frame on ${subject} failed the cluster-token check and was dropped (${this.rejectedLogged} so far; a publisher without the token, or another cluster's)`);
    }
    return null;
  }

  // onFrame: a worker's event frame; onRouting: another frontend's routing event (router
  // replica sync, router_sync.ts; this frontend's own come back too and are the caller's to skip).
  static async connect(
    url: string,
    onFrame: (instanceIdHex: string, bytes: Uint8Array) => void,
    onRouting: (ev: RoutingEvent) => void,
    o: NatsOptions = {},
  ): Promise<NatsEventSubscriber> {
    const log = o.log ?? silentLogger;
    const state = new RemoteState('nats', url, 'kvgate_event_plane', 'the event plane (NATS)', log);
    const nc = await open(url, 'kvgate-frontend', state, o);
    const self = new NatsEventSubscriber(nc, state, o.clusterToken !== undefined ? new EventAuth(o.clusterToken) : null, log);
    const events = nc.subscribe(`${EVENTS_SUBJECT_PREFIX}*`, {
      callback: (err, msg) => {
        if (err) return log.warn(`nats: subscription error: ${err.message}`);
        const bytes = self.verified('events', msg.subject, msg.data);
        if (bytes) onFrame(msg.subject.slice(EVENTS_SUBJECT_PREFIX.length), bytes);
      },
    });
    const routing = nc.subscribe(ROUTING_SUBJECT, {
      callback: (err, msg) => {
        if (err) return log.warn(`nats: subscription error: ${err.message}`);
        const bytes = self.verified('routing', msg.subject, msg.data);
        if (!bytes) return;
        try {
          onRouting(decodeRoutingEvent(bytes));
        } catch (e) {
          log.warn(`nats: routing event ignored: ${(e as Error).message}`);
        }
      },
    });
    self.subs = [events, routing];
    return self;
  }

  // Publishes this frontend's routing events (dropped while NATS cannot take them).
  publishRouting(ev: RoutingEvent): void {
    try {
      const bytes = encodeRoutingEvent(ev);
      this.nc.publish(ROUTING_SUBJECT, this.auth ? this.auth.seal(ROUTING_SUBJECT, bytes) : bytes);
    } catch {
      // Lost: the other frontends under-count this request's load until it would have ended.
    }
  }

  // routing: how the workers whose events come here are routed now (approximately while
  // NATS is away: KvWorkerSet.eventPlaneDown).
  health(): RemoteHealth & { routing: 'exact' | 'approximate' } {
    return { ...this.state.health(), routing: this.state.isConnected ? 'exact' : 'approximate' };
  }

  registerMetrics(registry: Registry): void {
    this.state.registerMetrics(registry);
    registry.registerMetric(this.rejected);
  }

  async close(): Promise<void> {
    await this.nc.drain().catch(() => undefined);
  }
}
