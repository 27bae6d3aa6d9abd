// The engine command line a worker runs: the user's `sglang.launch_server` arguments,
// untouched and first, then what kvgate needs (reference/sglang.md §1.7, §2.1, §3.1):
//   --host <worker host> --port <free>        frontends stream from the engine directly (the
//                                            card carries its URL); the agent supervises it
//   --kv-events-config {publisher zmq, endpoint tcp://127.0.0.1:<sub>, replay_endpoint ...}
//                                            a concrete host makes SGLang's PUB *connect*;
//                                            the agent's SUB binds there (per rank: +dp rank)
//   --enable-metrics --skip-tokenizer-init    /metrics for load; token ids in and out
//   --disaggregation-mode prefill|decode       from --role
//   --disaggregation-bootstrap-port <free>     prefill only, unless the user pinned one
//   --grpc-mode                                with --engine-protocol grpc: --port serves SGLang's
//                                              gRPC API (SglangScheduler) instead of HTTP
// Flags the agent must own are refused when the user passes them, with the reason.

import { KvgateError } from '../errors.js';
import type { EngineKind, WorkerRole } from '../engine/model_card.js';


// The API the worker speaks to its engine on the engine's port.
export type EngineProtocol = 'http' | 'grpc';

export const KV_TOPIC = 'kv';

// What the agent needs to know from the user's arguments before it starts the engine.
export interface UserArgs {
  // dp_size decides how many consecutive KV-event ports to reserve.
  dpSize: number;
  // A bootstrap port the user pinned (kept), or null.
  bootstrapPort: number | null;
  hasEnableMetrics: boolean;
  hasSkipTokenizerInit: boolean;
  hasDisaggregationMode: boolean;
}

export interface EnginePorts {
  // The engine's API port (HTTP, or gRPC in gRPC mode).
  http: number;
  // The first port of the agent's SUB sockets / the engine's replay sockets (+ dp rank).
  kvEvents: number;
  kvReplay: number;
  bootstrap: number | null;
}

export interface EngineLaunch {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
}

const MODE_OF_ROLE: Record<WorkerRole, string> = { agg: 'null', prefill: 'prefill', decode: 'decode' };

const OWNED: Record<string, string> = {
  '--port': 'kvgate picks the engine port itself (the worker advertises it to frontends); use `kvgate worker --port` for the request-plane port',
  '--host': 'the engine listens on the worker\'s address; use `kvgate worker --host` for both',
  '--kv-events-config': 'kvgate configures the engine KV events itself (ZMQ on free local ports, with replay)',
  '--grpc-mode': 'the worker must know which API its engine speaks: use `kvgate worker --engine-protocol grpc`',
  '--api-key': 'the worker and the frontends must send the key too: give it with KVGATE_ENGINE_API_KEY or `kvgate worker --engine-api-key-file` (never on a command line)',
};

function refuse(message: string): never {
  throw new KvgateError('invalid_config', message);
}

// Occurrences of `--flag value` or `--flag=value`; value is null when the next argument is
// another flag (or absent).
function occurrences(args: readonly string[], flag: string): (string | null)[] {
  const out: (string | null)[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === flag) {
      const next = args[i + 1];
      out.push(next !== undefined && !next.startsWith('--') ? next : null);
    } else if (a.startsWith(flag + '=')) {
      out.push(a.slice(flag.length + 1));
    }
  }
  return out;
}

function intFlag(args: readonly string[], flags: string[], min: number, max: number): number | null {
  let value: number | null = null;
  for (const flag of flags) {
    for (const raw of occurrences(args, flag)) {
      const n = Number(raw);
      if (raw === null || !Number.isInteger(n) || n < min || n > max) refuse(`${flag} expects an integer in [${min}, ${max}], got '${raw ?? ''}'`);
      value = n;
    }
  }
  return value;
}

export function inspectUserArgs(args: readonly string[], role: WorkerRole): UserArgs {
  for (const [flag, why] of Object.entries(OWNED)) {
    if (occurrences(args, flag).length > 0) refuse(`do not pass ${flag} to the engine: ${why}`);
  }
  const modes = occurrences(args, '--disaggregation-mode');
  for (const mode of modes) {
    if (mode !== MODE_OF_ROLE[role]) {
      const fix = mode === 'prefill' || mode === 'decode' ? `--role ${mode}` : mode === 'null' ? '--role agg' : 'a valid mode';
      refuse(`engine argument --disaggregation-mode ${mode ?? '(no value)'} contradicts --role ${role}: use ${fix} instead (kvgate sets the mode from --role)`);
    }
  }
  return {
    dpSize: intFlag(args, ['--dp-size', '--dp', '--data-parallel-size'], 1, 1024) ?? 1,
    bootstrapPort: intFlag(args, ['--disaggregation-bootstrap-port'], 1, 65535),
    hasEnableMetrics: occurrences(args, '--enable-metrics').length > 0,
    hasSkipTokenizerInit: occurrences(args, '--skip-tokenizer-init').length > 0,
    hasDisaggregationMode: modes.length > 0,
  };
}

export function kvEventsConfig(ports: EnginePorts): string {
  return JSON.stringify({
    publisher: 'zmq',
    endpoint: `tcp://127.0.0.1:${ports.kvEvents}`,
    replay_endpoint: `tcp://127.0.0.1:${ports.kvReplay}`,
    topic: KV_TOPIC,
  });
}

// The engine arguments: the user's, then kvgate's. `host`: the worker's listen address, so
// that the frontends that reach the worker reach its engine too.
// `apiKey`: the engine's --api-key (HTTP API only; SGLang's gRPC server has none).
export function engineArgs(user: readonly string[], info: UserArgs, role: WorkerRole, ports: EnginePorts, protocol: EngineProtocol = 'http', host = '127.0.0.1', apiKey?: string): string[] {
  const args = [...user, '--host', host, '--port', String(ports.http), '--kv-events-config', kvEventsConfig(ports)];
  if (protocol === 'grpc') args.push('--grpc-mode');
  else if (apiKey !== undefined) args.push('--api-key', apiKey);
  if (!info.hasEnableMetrics) args.push('--enable-metrics');
  if (!info.hasSkipTokenizerInit) args.push('--skip-tokenizer-init');
  if (role !== 'agg' && !info.hasDisaggregationMode) args.push('--disaggregation-mode', MODE_OF_ROLE[role]);
  if (role === 'prefill' && info.bootstrapPort === null && ports.bootstrap !== null) {
    args.push('--disaggregation-bootstrap-port', String(ports.bootstrap));
  }
  return args;
}

export interface LaunchCommandOptions {
  engine: EngineKind;
  // The Python that has SGLang (found on PATH by name).
  python: string;
  // How to run kvgate itself, for `--engine mocker`: [node, ...node flags, entry script].
  kvgate: readonly string[];
}

export function launchCommand(o: LaunchCommandOptions, args: string[], env: NodeJS.ProcessEnv = process.env): EngineLaunch {
  // Unbuffered Python output, so the engine's log lines reach the worker's log as written.
  const engineEnv = { ...env, PYTHONUNBUFFERED: '1' };
  if (o.engine === 'sglang') return { command: o.python, args: ['-m', 'sglang.launch_server', ...args], env: engineEnv };
  const [node, ...rest] = o.kvgate;
  return { command: node!, args: [...rest, 'mocker', ...args], env: engineEnv };
}
