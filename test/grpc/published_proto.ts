// The published SGLang gRPC contract (PyPI smg-grpc-proto, SGLang's gateway's own
// definitions), found or fetched for the contract tests:
//   SMG_GRPC_PROTO_DIR=<dir holding sglang_scheduler.proto>, else the installed Python
//   package, else `python3 -m pip download --no-deps smg-grpc-proto==<pinned>` into build/
//   (a wheel is a zip: nothing is installed).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const SMG_GRPC_PROTO_VERSION = '0.4.28';

function python(args: string[]): string {
  return execFileSync('python3', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 }).trim();
}

export function publishedProtoDir(): string {
  const env = process.env['SMG_GRPC_PROTO_DIR'];
  if (env) return env;
  try {
    const dir = python(['-c', 'import os, smg_grpc_proto as m; print(os.path.join(os.path.dirname(m.__file__), "proto"))']);
    if (existsSync(join(dir, 'sglang_scheduler.proto'))) return dir;
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
