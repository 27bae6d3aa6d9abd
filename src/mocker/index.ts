// `kvgate mocker` as a library: a simulated SGLang engine in this process.
//
//   const m = await startMocker({ port: 0, pageSize: 16, kvEventsConfig: { publisher: 'zmq', endpoint: 'tcp://127.0.0.1:0', bind: true } });
//   await fetch(`${m.url}/generate`, ...);
//   await m.close();

import { startBootstrapServer, type BootstrapServer } from './bootstrap_server.js';
import { MockEngine } from './engine.js';
import { startGrpcServer } from './grpc_server.js';
import { startHttpServer } from './http_server.js';
import { silentLogger, type Logger } from '../observability/log.js';
import { KvEventPublishers } from './kv_events.js';
import { resolveOptions, type MockerOptions } from './options.js';
import { urlHost } from '../net/url_host.js';

export type { KvEventsConfig, MockerOptions } from './options.js';

export interface MockerHandle {
  // http://<host>:<port> (grpc://<host>:<port> in gRPC mode), with a wildcard host replaced by 127.0.0.1.
  url: string;
  port: number;
  dpSize: number;
  // Bound KV-event ports, one per DP rank (base + rank); empty without --kv-events-config.
  kvEventPorts: number[];
  kvReplayPorts: number[];
  // The prefill engine's bootstrap server port (null unless disaggregationMode is prefill).
  bootstrapPort: number | null;
  // Resolves when /health turns 200 (after --startup-delay).
  ready: Promise<void>;
  // Stop accepting, let in-flight requests finish for up to `graceMs` (default 2000), abort the
  // rest, close every socket.
  close(graceMs?: number): Promise<void>;
}

// `log` gets the engine's warnings (SGLang's server log lines); default: none.
export async function startMocker(options: Partial<MockerOptions> = {}, log: Logger = silentLogger): Promise<MockerHandle> {
  const o = resolveOptions(options);
  const publishers = o.kvEvents ? await KvEventPublishers.open(o.kvEvents, o.dpSize, o.kvEventsWire) : null;
  const engine = new MockEngine(o, publishers, log);
  // The engine's API on --port: SGLang's HTTP, or its gRPC service in gRPC mode.
  let http: { port: number; close(): void | Promise<void>; closeConnections?(): void } | null = null;
  let bootstrap: BootstrapServer | null = null;
  try {
    const start = o.grpcMode ? startGrpcServer : startHttpServer;
    http = await start(engine, publishers?.ports ?? null, () => bootstrap?.port ?? null);
    if (o.disaggregationMode === 'prefill') {
      const rv = engine.rendezvous!;
      bootstrap = await startBootstrapServer(o.host, o.disaggregationBootstrapPort, engine.bootstrapTable!, (ex, body) => rv.decodeArrived(ex, body));
      // Each prefill DP rank registers itself, as SGLang's ranks PUT /route at startup.
      for (let r = 0; r < o.dpSize; r++) {
        engine.bootstrapTable!.putRoute({
          attn_tp_size: 1,
          attn_tp_rank: 0,
          attn_cp_size: 1,
          attn_cp_rank: 0,
          attn_dp_size: 1,
          attn_dp_rank: 0,
          pp_size: 1,
          pp_rank: 0,
          system_dp_size: o.dpSize,
          system_dp_rank: r,
          rank_ip: urlHost(o.host),
          rank_port: bootstrap.port,
          page_size: o.pageSize,
          kv_cache_dtype: 'bfloat16',
          prefill_http_port: http.port,
          load_balance_method: o.loadBalanceMethod,
        });
      }
    }
  } catch (err) {
    await http?.close();
    bootstrap?.close();
    await publishers?.close();
    throw err;
  }
  let startup: NodeJS.Timeout | undefined;
  const ready = new Promise<void>((resolve) => {
    const up = () => {
      engine.status = 'up';
      resolve();
    };
    if (o.startupDelayMs === 0) up();
    else startup = setTimeout(up, o.startupDelayMs);
  });
  const ports = publishers?.ports;
  const range = (base: number | null | undefined) => (base == null ? [] : Array.from({ length: o.dpSize }, (_, r) => base + r));
  let closing: Promise<void> | null = null;
  const port = http.port;
  return {
    url: `${o.grpcMode ? 'grpc' : 'http'}://${urlHost(o.host)}:${port}`,
    port,
    dpSize: o.dpSize,
    kvEventPorts: range(ports?.publishBase),
    kvReplayPorts: range(ports?.replayBase),
    bootstrapPort: bootstrap?.port ?? null,
    ready,
    close(graceMs = 2000) {
      closing ??= (async () => {
        clearTimeout(startup);
        const stopped = http!.close();
        await engine.drain(graceMs);
        await stopped;
        // Aborted requests' last bytes leave first; then keep-alive sockets go.
        await new Promise((resolve) => setTimeout(resolve, 20));
        http!.closeConnections?.();
        bootstrap?.close();
        await publishers?.close();
      })();
      return closing;
    },
  };
}
