// The processes of the bench suite's scripts: kvgate (run from the sources, as the e2e tests
// do), `kvgate serve` until it is listening, `kvgate bench` and its results.json.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Results } from '../../src/bench/stats.js';

// The children spawned here, ended when this process exits (the scripts turn SIGINT/SIGTERM into
// an exit), so an interrupted run leaves no `kvgate serve` fleet or `kvgate bench` behind.
const live = new Set<ChildProcess>();
function track(p: ChildProcess): ChildProcess {
  live.add(p);
  p.once('exit', () => live.delete(p));
  return p;
}
process.on('exit', () => {
  for (const p of live) p.kill('SIGTERM');
});

const cli = fileURLToPath(new URL('../../test/e2e/kvgate_cli.ts', import.meta.url));
export const KVGATE = [process.execPath, '--import', 'tsx', cli];

// Runs a command to its end; rejects with the tail of its output when it fails.
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolve, reject) => {
    const p = track(spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env }));
    let log = '';
    p.stdout.on('data', (d) => (log += d));
    p.stderr.on('data', (d) => (log += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(log) : reject(new Error(`${cmd} ${args.slice(0, 4).join(' ')} exited ${code}:\n${log.slice(-2000)}`))));
  });
}

export interface Serving {
  url: string;
  stop(): Promise<void>;
}

// `kvgate serve --port 0 <args>`, resolved with its URL once it prints the listening line.
export async function startServe(args: string[]): Promise<Serving> {
  const proc = track(spawn(KVGATE[0]!, [...KVGATE.slice(1), 'serve', '--port', '0', '--log-level', 'warn', ...args], { stdio: ['ignore', 'pipe', 'inherit'] }));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const url = await new Promise<string>((resolve, reject) => {
    let s = '';
    proc.stdout!.on('data', (d) => {
      s += d;
      const m = /listening on (http:\/\/[0-9.:]+)/.exec(s);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', (code) => reject(new Error(`kvgate serve ${args.join(' ')} exited ${code}`)));
  });
  return {
    url,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
    },
  };
}

// `kvgate bench <args> --output dir`, and what it wrote.
export async function kvgateBench(args: string[], dir: string): Promise<Results> {
  await run(KVGATE[0]!, [...KVGATE.slice(1), 'bench', ...args, '--progress', 'none', '--output', dir]);
  return JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
}
