// Routers under test as users run them: a `kvgate router` (or SGLang's router) process with
// the workers' URLs on its command line, its ready line awaited, killed by PID afterwards.

import { spawn, type ChildProcess } from 'node:child_process';
import { KVGATE } from '../e2e/stack.js';

export interface RouterProcess {
  url: string;
  metricsPort: number;
  proc: ChildProcess;
  stderr: () => string;
  stop(): Promise<number | null>;
}

const running = new Set<ChildProcess>();

export async function startKvgateRouter(args: string[], timeoutMs = 20_000): Promise<RouterProcess> {
  const proc = spawn(KVGATE[0]!, [...KVGATE.slice(1), 'router', '--port', '0', '--prometheus-port', '0', '--log-level', 'warn', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const ready = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kvgate router not ready in ${timeoutMs} ms: ${err}`)), timeoutMs);
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+) metrics=(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kvgate router exited with ${code}: ${err}`));
    });
  });
  return { url: ready[1]!, metricsPort: Number(ready[2]), proc, stderr: () => err, stop: () => stopProcess(proc) };
}

export function stopProcess(proc: ChildProcess): Promise<number | null> {
  running.delete(proc);
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(proc.exitCode);
  return new Promise((resolve) => {
    const kill = setTimeout(() => proc.kill('SIGKILL'), 10_000);
    proc.once('exit', (code) => {
      clearTimeout(kill);
      resolve(code);
    });
    proc.kill('SIGTERM');
  });
}

export async function stopAllProcesses(): Promise<void> {
  await Promise.all([...running].map(stopProcess));
}

// A Prometheus text body's value of `name{labels}` (summed over label sets when labels omitted).
export function metricValue(text: string, name: string, labels?: string): number {
  let sum = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (labels !== undefined && !(m[2] ?? '').includes(labels)) continue;
    sum += Number(m[3]);
    found = true;
  }
  return found ? sum : NaN;
}
