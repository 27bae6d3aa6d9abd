// The engine command line a worker builds: user args untouched and first, kvgate's after,
// conflicts refused with the reason.
import { describe, expect, it } from 'vitest';
import { engineArgs, inspectUserArgs, launchCommand, type EnginePorts } from '../../src/worker/engine_args.js';

const ports: EnginePorts = { http: 31000, kvEvents: 41000, kvReplay: 42000, bootstrap: 43000 };
const user = ['--model-path', 'Qwen/Qwen3-0.6B', '--page-size', '16', '--tp', '1', '--trust-remote-code', '--served-model-name=qwen'];

describe('engine arguments', () => {
  it('keeps the user arguments first and untouched, then adds what kvgate needs', () => {
    const args = engineArgs(user, inspectUserArgs(user, 'agg'), 'agg', ports);
    expect(args.slice(0, user.length)).toEqual(user);
    expect(args.slice(user.length)).toEqual([
      '--host',
      '127.0.0.1',
      '--port',
      '31000',
      '--kv-events-config',
      '{"publisher":"zmq","endpoint":"tcp://127.0.0.1:41000","replay_endpoint":"tcp://127.0.0.1:42000","topic":"kv"}',
      '--enable-metrics',
      '--skip-tokenizer-init',
    ]);
  });

  it('adds --grpc-mode for the gRPC engine protocol only', () => {
    expect(engineArgs(user, inspectUserArgs(user, 'agg'), 'agg', ports, 'grpc').slice(user.length, user.length + 5)).toEqual(['--host', '127.0.0.1', '--port', '31000', '--kv-events-config']);
    expect(engineArgs(user, inspectUserArgs(user, 'agg'), 'agg', ports, 'grpc')).toContain('--grpc-mode');
    expect(engineArgs(user, inspectUserArgs(user, 'agg'), 'agg', ports, 'http')).not.toContain('--grpc-mode');
  });

  it('sets the disaggregation mode from the role, and a bootstrap port for prefill only', () => {
    const prefill = engineArgs(user, inspectUserArgs(user, 'prefill'), 'prefill', ports);
    expect(prefill.join(' ')).toContain('--disaggregation-mode prefill --disaggregation-bootstrap-port 43000');
    const decode = engineArgs(user, inspectUserArgs(user, 'decode'), 'decode', { ...ports, bootstrap: null });
    expect(decode.join(' ')).toContain('--disaggregation-mode decode');
    expect(decode.join(' ')).not.toContain('bootstrap');
  });

  it('does not repeat flags the user already gave, and keeps a pinned bootstrap port', () => {
    const mine = [...user, '--enable-metrics', '--skip-tokenizer-init', '--disaggregation-mode', 'prefill', '--disaggregation-bootstrap-port', '12345'];
    const info = inspectUserArgs(mine, 'prefill');
    expect(info.bootstrapPort).toBe(12345);
    const args = engineArgs(mine, info, 'prefill', ports);
    for (const flag of ['--enable-metrics', '--skip-tokenizer-init', '--disaggregation-mode', '--disaggregation-bootstrap-port']) {
      expect(args.filter((a) => a === flag)).toHaveLength(1);
    }
  });

  it('reads the dp size (either spelling) to reserve one KV-event port per rank', () => {
    expect(inspectUserArgs(['--dp-size', '4'], 'agg').dpSize).toBe(4);
    expect(inspectUserArgs(['--dp=2'], 'agg').dpSize).toBe(2);
    expect(inspectUserArgs(['--data-parallel-size=3'], 'agg').dpSize).toBe(3);
    expect(inspectUserArgs([], 'agg').dpSize).toBe(1);
    expect(() => inspectUserArgs(['--dp-size', 'many'], 'agg')).toThrow(/--dp-size expects an integer/);
  });

  it.each([
    [['--port', '30000'], /do not pass --port .*kvgate worker --port/],
    [['--port=30000'], /do not pass --port/],
    [['--host', '0.0.0.0'], /do not pass --host/],
    [['--kv-events-config', '{"publisher":"zmq"}'], /do not pass --kv-events-config/],
    [['--grpc-mode'], /do not pass --grpc-mode to the engine: .*--engine-protocol grpc/],
  ])('refuses %j: kvgate owns that flag', (args, message) => {
    expect(() => inspectUserArgs(args, 'agg')).toThrow(message);
  });

  it('refuses a disaggregation mode that contradicts the role, naming the fix', () => {
    expect(() => inspectUserArgs(['--disaggregation-mode', 'prefill'], 'agg')).toThrow(/contradicts --role agg: use --role prefill/);
    expect(() => inspectUserArgs(['--disaggregation-mode', 'decode'], 'prefill')).toThrow(/use --role decode/);
    expect(() => inspectUserArgs(['--disaggregation-mode=null'], 'decode')).toThrow(/use --role agg/);
    expect(inspectUserArgs(['--disaggregation-mode', 'null'], 'agg').hasDisaggregationMode).toBe(true);
  });

  it('runs SGLang with python -m sglang.launch_server, the mocker with this kvgate, both unbuffered', () => {
    const env = { PATH: '/usr/bin', CUDA_VISIBLE_DEVICES: '1' };
    const sg = launchCommand({ engine: 'sglang', python: 'python3', kvgate: ['/usr/bin/node', 'kvgate.js'] }, ['--x'], env);
    expect(sg).toEqual({ command: 'python3', args: ['-m', 'sglang.launch_server', '--x'], env: { ...env, PYTHONUNBUFFERED: '1' } });
    const mk = launchCommand({ engine: 'mocker', python: 'python3', kvgate: ['/usr/bin/node', '--import', 'tsx', 'cli.ts'] }, ['--x'], env);
    expect(mk.command).toBe('/usr/bin/node');
    expect(mk.args).toEqual(['--import', 'tsx', 'cli.ts', 'mocker', '--x']);
  });
});
