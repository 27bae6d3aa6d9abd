// Discovery on etcd (`--discovery etcd://host:port[,host:port]`).
//
// Key layout (also in the README):
//   kvgate/v1/workers/<instance id, 16 hex digits>  ->  JSON WorkerRecord {instanceId, url, card}
// Each key is attached to its worker's own lease (10 s TTL, kept alive by the worker), so a
// worker that dies leaves etcd within the TTL and, through the frontends' watch, routing.
//
// Worker side (EtcdRegistry): grant a lease, put the record under it, keep it alive. A lease
// that is lost (etcd away for longer than the TTL, or revoked) is replaced, with backoff,
// until the worker unregisters: registrations come back by themselves after an outage.
//
// Frontend side (EtcdDiscovery): list the prefix, then watch it from the listed revision + 1.
// The watch reconnects with backoff and resumes from its last revision; a watch etcd cancels
// (compacted history) or a list that fails starts over with a new list, reconciled against
// the known set. While etcd is away the last known set stays: workers keep being routed to
// (their own request-plane connections say whether they are alive). The state is exposed
// for /health and as metrics.

import { readFileSync } from 'node:fs';
import { Etcd3, type IKeyValue, type Lease, type Watcher } from 'etcd3';
import { Gauge, type Registry as MetricsRegistry } from 'prom-client';
import { KvgateError } from '../errors.js';
import { isJsonObject } from '../json.js';
import { silentLogger, type Logger } from '../observability/log.js';
import { RemoteState, type RemoteHealth } from '../observability/remote_state.js';
import type { EtcdAccess } from '../security/secrets.js';
import { RecordSet, type Discovery, type DiscoveryEvent, type Registration, type Registry, type WorkerRecord } from './discovery.js';

export const ETCD_WORKERS_PREFIX = 'kvgate/v1/workers/';
export const WORKER_LEASE_TTL_S = 10;

const workerKey = (instanceId: string) => ETCD_WORKERS_PREFIX + instanceId;

// `etcd://h1:p1,h2:p2` -> ['http://h1:p1', 'http://h2:p2'] (https with TLS).
export function etcdEndpoints(url: string, tls = false): string[] {
  const m = /^etcd:\/\/(.+)$/.exec(url);
  const hosts = m ? m[1]!.split(',').map((h) => h.trim()) : [];
  if (hosts.length === 0 || hosts.some((h) => !/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(h))) {
    throw new KvgateError('invalid_config', `--discovery: '${url}' is not etcd://host:port[,host:port...]`);
  }
  return hosts.map((h) => `${tls ? 'https' : 'http'}://${h}`);
}

// The client, with the user's credentials and TLS files (security/secrets.ts).
function etcdClient(url: string, access: EtcdAccess = {}): Etcd3 {
  const tls = access.tls;
  const pem = (f: string | undefined) => (f === undefined ? undefined : readFileSync(f));
  return new Etcd3({
    hosts: etcdEndpoints(url, tls !== undefined),
    ...(access.auth ? { auth: { username: access.auth.username, password: access.auth.password } } : {}),
    // No CA file: the system's roots (gRPC's default for a null root certificate).
    ...(tls ? { credentials: { rootCertificate: pem(tls.ca) ?? (null as unknown as Buffer), ...(tls.cert ? { certChain: pem(tls.cert)!, privateKey: pem(tls.key)! } : {}) } } : {}),
  });
}

// Exponential backoff with a cap; reset() after a success.
class Backoff {
  private next: number;
  constructor(
    private readonly first = 250,
    private readonly most = 5000,
  ) {
    this.next = first;
  }
  take(): number {
    const d = this.next;
    this.next = Math.min(this.most, this.next * 2);
    return d;
  }
  reset(): void {
    this.next = this.first;
  }
}

export interface EtcdOptions {
  url: string; // etcd://host:port[,host:port]
  log?: Logger;
  leaseTtlS?: number; // workers; default 10
  // User and password, TLS files.
  access?: EtcdAccess;
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

// A record read from etcd, or null (logged) when it is not one of ours.
function parseRecord(kv: IKeyValue, log: Logger): WorkerRecord | null {
  const key = kv.key.toString();
  try {
    const v: unknown = JSON.parse(kv.value.toString());
    if (
      isJsonObject(v) &&
      typeof v['instanceId'] === 'string' &&
      key === workerKey(v['instanceId']) &&
      typeof v['url'] === 'string' &&
      /^wss?:\/\/[^/]+/.test(v['url']) &&
      isJsonObject(v['card']) &&
      typeof v['card']['servedModelName'] === 'string'
    ) {
      return v as unknown as WorkerRecord;
    }
  } catch {
    // not JSON: reported below
  }
  log.warn(`etcd: ignoring ${key}: not a kvgate worker record`);
  return null;
}

// ---- worker side ----

export class EtcdRegistry implements Registry {
  private readonly client: Etcd3;
  private readonly log: Logger;
  private readonly ttl: number;
  private readonly live = new Set<EtcdRegistration>();

  constructor(opts: EtcdOptions) {
    this.client = etcdClient(opts.url, opts.access);
    this.log = opts.log ?? silentLogger;
    this.ttl = opts.leaseTtlS ?? WORKER_LEASE_TTL_S;
  }

  register(record: WorkerRecord): Registration {
    const r = new EtcdRegistration(this.client, this.ttl, record, this.log, () => this.live.delete(r));
    this.live.add(r);
    return r;
  }

  // Whether every registration is in etcd now (tests, diagnostics).
  get registered(): boolean {
    return [...this.live].every((r) => r.registered);
  }

  async close(): Promise<void> {
    await Promise.all([...this.live].map((r) => r.unregister()));
    this.client.close();
  }
}

class EtcdRegistration implements Registration {
  registered = false;
  private lease: Lease | null = null;
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly backoff = new Backoff();
  // Serializes puts (an update while a registration is being made).
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly client: Etcd3,
    private readonly ttl: number,
    private record: WorkerRecord,
    private readonly log: Logger,
    private readonly onGone: () => void,
  ) {
    this.schedule(0);
  }

  update(record: WorkerRecord): void {
    const old = this.record;
    this.record = record;
    if (old.instanceId !== record.instanceId) {
      this.chain = this.chain.then(() => this.client.delete().key(workerKey(old.instanceId)).then(() => undefined, () => undefined));
    }
    if (this.lease && this.registered) this.chain = this.chain.then(() => this.put(this.lease!));
  }

  unregister(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.stopped = true;
    this.onGone();
    if (this.timer) clearTimeout(this.timer);
    const lease = this.lease;
    this.lease = null;
    this.registered = false;
    if (!lease) return Promise.resolve();
    // Revoking deletes the key at once; if etcd is away, the lease lapses by itself.
    const deadline = new Promise<void>((resolve) => setTimeout(resolve, 2000).unref());
    return Promise.race([lease.revoke().catch(() => lease.release()), deadline]);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.attempt(), ms);
    this.timer.unref();
  }

  private async attempt(): Promise<void> {
    this.timer = null;
    const lease = this.client.lease(this.ttl);
    this.lease = lease;
    lease.on('lost', (err: Error) => {
      if (this.lease !== lease || this.stopped) return;
      this.lease = null;
      const wait = this.backoff.take();
      // Lost before it was ever put (refused credentials, etcd away) is a failed attempt.
      if (this.registered) this.log.warn(`etcd: registration of ${this.record.instanceId} lost (${err.message}); registering again`);
      else this.log.warn(`etcd: cannot register ${this.record.instanceId}: ${err.message}; retrying in ${wait} ms`);
      this.registered = false;
      this.schedule(wait);
    });
    try {
      await this.put(lease);
      if (this.lease !== lease) return;
      this.backoff.reset();
      this.log.info(`etcd: registered ${workerKey(this.record.instanceId)} (${this.record.url}, lease ttl ${this.ttl} s)`);
    } catch (err) {
      if (this.lease !== lease || this.stopped) return;
      this.lease = null;
      lease.release();
      this.registered = false;
      const wait = this.backoff.take();
      this.log.warn(`etcd: cannot register ${this.record.instanceId}: ${errorText(err)}; retrying in ${wait} ms`);
      this.schedule(wait);
    }
  }

  private async put(lease: Lease): Promise<void> {
    await lease.put(workerKey(this.record.instanceId)).value(JSON.stringify(this.record));
    if (this.lease === lease && !this.stopped) this.registered = true;
  }
}

// ---- frontend side ----

export class EtcdDiscovery implements Discovery {
  private readonly client: Etcd3;
  private readonly log: Logger;
  private readonly set = new RecordSet();
  private readonly backoff = new Backoff();
  private watcher: Watcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly state: RemoteState;
  private readonly gWorkers = new Gauge({ name: 'kvgate_discovery_workers', help: 'Workers known from discovery (the last known set while etcd is away)', registers: [] });
  private firstSync: { promise: Promise<void>; resolve: () => void };

  constructor(opts: EtcdOptions) {
    this.client = etcdClient(opts.url, opts.access);
    this.log = opts.log ?? silentLogger;
    this.state = new RemoteState('etcd', opts.url, 'kvgate_discovery', 'the discovery backend (etcd)', this.log);
    let resolve!: () => void;
    this.firstSync = { promise: new Promise<void>((r) => (resolve = r)), resolve };
    this.gWorkers.set(0);
    void this.sync();
  }

  // Resolves after the first successful list (or never, while etcd is away).
  synced(): Promise<void> {
    return this.firstSync.promise;
  }

  watch(listener: (event: DiscoveryEvent) => void): () => void {
    return this.set.watch(listener);
  }

  list(): WorkerRecord[] {
    return this.set.list();
  }

  health(): RemoteHealth & { workers: number } {
    return { ...this.state.health(), workers: this.set.list().length };
  }

  registerMetrics(registry: MetricsRegistry): void {
    this.state.registerMetrics(registry);
    registry.registerMetric(this.gWorkers);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const w = this.watcher;
    this.watcher = null;
    await w?.cancel().catch(() => undefined);
    this.client.close();
    this.set.clear();
  }

  private up(): void {
    this.state.up();
    this.backoff.reset();
  }

  private down(err: unknown): void {
    this.state.down(err, `serving the last known ${this.set.list().length} worker(s), reconnecting`);
  }

  // List the prefix, reconcile, then watch from the next revision.
  private async sync(): Promise<void> {
    this.timer = null;
    if (this.closed) return;
    const old = this.watcher;
    this.watcher = null;
    await old?.cancel().catch(() => undefined);
    try {
      const res = await this.client.getAll().prefix(ETCD_WORKERS_PREFIX).exec();
      if (this.closed) return;
      const seen = new Set<string>();
      for (const kv of res.kvs) {
        const r = parseRecord(kv, this.log);
        if (r) {
          seen.add(r.instanceId);
          this.putRecord(r);
        }
      }
      for (const r of this.set.list()) if (!seen.has(r.instanceId)) this.set.delete(r.instanceId);
      this.gWorkers.set(this.set.list().length);
      const watcher = await this.client
        .watch()
        .prefix(ETCD_WORKERS_PREFIX)
        .startRevision(String(BigInt(res.header.revision) + 1n))
        .create();
      if (this.closed) {
        await watcher.cancel().catch(() => undefined);
        return;
      }
      this.watcher = watcher;
      watcher
        .on('put', (kv) => {
          const r = parseRecord(kv, this.log);
          if (r) this.putRecord(r);
          this.gWorkers.set(this.set.list().length);
        })
        .on('delete', (kv) => {
          const key = kv.key.toString();
          this.set.delete(key.slice(ETCD_WORKERS_PREFIX.length));
          this.gWorkers.set(this.set.list().length);
        })
        .on('disconnected', (err: Error) => this.down(err))
        .on('connected', () => this.up())
        .on('error', (err: Error) => {
          // Cancelled by etcd (e.g. the revision was compacted): list again.
          if (this.watcher !== watcher) return;
          this.log.warn(`etcd: watch ended (${err.message}); listing again`);
          this.retry(err);
        });
      this.up();
      this.firstSync.resolve();
    } catch (err) {
      this.retry(err);
    }
  }

  private retry(err: unknown): void {
    if (this.closed) return;
    this.down(err);
    const wait = this.backoff.take();
    this.log.debug(`etcd: ${errorText(err)}; listing again in ${wait} ms`);
    this.timer = setTimeout(() => void this.sync(), wait);
    this.timer.unref();
  }

  // Adds a record, or replaces it if it changed (an unchanged one is not announced again).
  private putRecord(r: WorkerRecord): void {
    const known = this.set.list().find((w) => w.instanceId === r.instanceId);
    if (known && JSON.stringify(known) === JSON.stringify(r)) return;
    this.set.put(r);
  }
}
