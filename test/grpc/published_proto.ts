// The published SGLang gRPC contract (PyPI smg-grpc-proto, SGLang's gateway's own
// definitions), found or fetched for the contract tests:
// - its .proto files: SMG_GRPC_PROTO_DIR=<dir holding sglang_scheduler.proto>, else the
//   installed Python package if it is the pinned version, else `python3 -m pip download --no-deps
//   smg-grpc-proto==<pinned>` into build/ (a wheel is a zip: nothing is installed);
// - a Python with its generated stubs and grpcio: SMG_GRPC_PYTHON, else a venv in build/
//   made with `python3 -m venv build/smg-grpc-venv && build/smg-grpc-venv/bin/pip install
//   smg-grpc-proto==<pinned>` (about 20 s, once).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const SMG_GRPC_PROTO_VERSION = '0.4.28';

function python(args: string[], exe = 'python3'): string {
  return execFileSync(exe, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 }).trim();
}

export function publishedProtoDir(): string {
  const env = process.env['SMG_GRPC_PROTO_DIR'];
  if (env) return env;
  try {
    const [version, dir] = python(['-c', 'import os, smg_grpc_proto as m; print(m.__version__); print(os.path.join(os.path.dirname(m.__file__), "proto"))']).split('\n');
    if (version === SMG_GRPC_PROTO_VERSION && existsSync(join(dir!, 'sglang_scheduler.proto'))) return dir!;
  } catch {
    /* not installed: download the wheel */
  }
  const root = resolve('build', `smg-grpc-proto-${SMG_GRPC_PROTO_VERSION}`);
  const dir = join(root, 'smg_grpc_proto', 'proto');
  if (existsSync(join(dir, 'sglang_scheduler.proto'))) return dir;
  mkdirSync(root, { recursive: true });
  python(['-m', 'pip', 'download', '--quiet', '--no-deps', `smg-grpc-proto==${SMG_GRPC_PROTO_VERSION}`, '-d', root]);
  const wheel = readdirSync(root).find((f) => f.endsWith('.whl'));
  if (!wheel) throw new Error(`pip download left no wheel in ${root}`);
  python(['-m', 'zipfile', '-e', join(root, wheel), root]);
  return dir;
}

export function publishedStubsPython(): string {
  const env = process.env['SMG_GRPC_PYTHON'];
  if (env) return env;
  const venv = resolve('build', `smg-grpc-venv-${SMG_GRPC_PROTO_VERSION}`);
  const exe = join(venv, 'bin', 'python');
  const works = () => {
    try {
      python(['-c', 'import grpc; from smg_grpc_proto import sglang_scheduler_pb2_grpc'], exe);
      return true;
    } catch {
      return false;
    }
  };
  if (existsSync(exe) && works()) return exe;
  python(['-m', 'venv', venv]);
  python(['-m', 'pip', 'install', '--quiet', `smg-grpc-proto==${SMG_GRPC_PROTO_VERSION}`], exe);
  if (!works()) throw new Error(`${exe} cannot import smg_grpc_proto after pip install`);
  return exe;
}
