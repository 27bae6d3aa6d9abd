// The deployment files (Dockerfile, deploy/docker-compose.yml, deploy/k8s/, deploy/slurm/)
// checked without Docker, a cluster or SLURM: the YAML parses (and the compose file passes
// `docker-compose config`, Debian docker-compose), the objects hang together
// (selectors, services, secrets, mounts), and every kvgate command line they run parses with
// the real flag schema (src/config.ts), engine arguments included (the mocker's own schema,
// and the flags kvgate workers refuse). The sbatch script passes shellcheck (Debian
// shellcheck) and is run with stand-ins for scontrol and srun that record what it starts.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse } from 'yaml';
import { parseCommandLine } from '../../src/config.js';
import { inspectUserArgs } from '../../src/worker/engine_args.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (p: string) => readFileSync(join(root, p), 'utf8');
const tmp = mkdtempSync(join(tmpdir(), 'kvgate-deploy-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Run {
  sub: 'serve' | 'worker';
  flags: Record<string, unknown>;
  engineArgs: string[];
}

// `kvgate <argv>` as the CLI would take it: the subcommand's flags, and a worker's engine args.
function kvgateRun(argv: string[]): Run {
  const [sub, ...rest] = argv;
  expect(['serve', 'worker']).toContain(sub);
  const { options, passthrough } = parseCommandLine(sub as 'serve' | 'worker', rest);
  if (sub === 'worker') {
    inspectUserArgs(passthrough, (options as { role: 'agg' }).role);
    if ((options as { engine: string }).engine === 'mocker') parseCommandLine('mocker', passthrough);
  }
  return { sub: sub as Run['sub'], flags: options, engineArgs: passthrough };
}

// Both secrets given as files, none as a flag value; what the files are.
function secretFiles(run: Run): string[] {
  const f = run.flags as { clusterTokenFile?: string; engineApiKeyFile?: string };
  expect(f.clusterTokenFile, `${run.sub}: --cluster-token-file`).toBeTruthy();
  expect(f.engineApiKeyFile, `${run.sub}: --engine-api-key-file`).toBeTruthy();
  return [f.clusterTokenFile!, f.engineApiKeyFile!];
}

describe('deploy/docker-compose.yml', () => {
  const compose = parse(read('deploy/docker-compose.yml'), { merge: true }) as {
    services: Record<string, { image?: string; build?: unknown; command?: string[]; secrets?: string[]; ports?: string[]; depends_on?: string[] }>;
    secrets: Record<string, { file: string }>;
  };
  const kvgate = Object.entries(compose.services).filter(([, s]) => s.image === 'kvgate:local');

  it('is a valid compose file (docker-compose config, Debian docker-compose)', () => {
    execFileSync('docker-compose', ['-f', join(root, 'deploy/docker-compose.yml'), 'config', '-q'], { stdio: 'pipe', env: { ...process.env, COMPOSE_PROJECT_NAME: 'kvgate' } });
  });

  it('runs etcd, NATS, one frontend and two mocker workers, with valid kvgate command lines', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['etcd', 'frontend', 'nats', 'worker-1', 'worker-2']);
    expect(compose.services['frontend']!.build).toEqual({ context: '..', dockerfile: 'Dockerfile' });
    expect(existsSync(join(root, 'Dockerfile'))).toBe(true);
    expect(compose.services['frontend']!.ports).toEqual(['8000:8000']);
    const runs = kvgate.map(([name, s]) => [name, kvgateRun(s.command!)] as const);
    expect(runs.map(([name, r]) => `${name} ${r.sub}`)).toEqual(['frontend serve', 'worker-1 worker', 'worker-2 worker']);
    for (const [name, r] of runs) {
      const f = r.flags as { discovery: string; eventPlane: string; host: string; advertiseHost?: string; engine?: string };
      // etcd and NATS by their compose service names.
      expect(f.discovery).toBe('etcd://etcd:2379');
      expect(f.eventPlane).toBe('nats://nats:4222');
      expect(compose.services[name]!.depends_on).toEqual(['etcd', 'nats']);
      expect(f.host).toBe('0.0.0.0');
      if (r.sub === 'worker') {
        // Frontends reach a worker (and its engine) by its service name.
        expect(f.advertiseHost).toBe(name);
        expect(f.engine).toBe('mocker');
      }
      // The secrets are compose secrets, mounted as files under /run/secrets.
      for (const path of secretFiles(r)) {
        const secret = /^\/run\/secrets\/(\w+)$/.exec(path)?.[1];
        expect(compose.services[name]!.secrets).toContain(secret);
        expect(compose.secrets[secret!]!.file).toMatch(/^\.\/secrets\//);
      }
    }
  });
});

describe('deploy/k8s', () => {
  type Obj = { kind: string; metadata: { name: string }; spec?: Record<string, unknown>; data?: Record<string, string> };
  type Container = { name: string; image: string; args?: string[]; envFrom?: { configMapRef: { name: string } }[]; env?: { name: string; value?: string; valueFrom?: unknown }[]; volumeMounts?: { name: string; mountPath: string }[]; ports?: { name: string }[] };
  type PodSpec = { containers: Container[]; volumes?: { name: string; secret?: { secretName: string } }[] };
  const files = readdirSync(join(root, 'deploy/k8s')).filter((f) => f.endsWith('.yaml'));
  const docs = new Map<string, Obj[]>();
  for (const f of files) {
    const parsed = parseAllDocuments(read(`deploy/k8s/${f}`));
    for (const d of parsed) expect(d.errors, f).toEqual([]);
    docs.set(f, parsed.map((d) => d.toJS() as Obj));
  }
  const all = [...docs.values()].flat();
  const kustomization = all.find((o) => o.kind === 'Kustomization') as unknown as { resources: string[] };
  const config = all.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'kvgate-config')!.data!;

  it('lists every manifest but the optional SGLang workers, and each workload has its Service', () => {
    expect(kustomization.resources.sort()).toEqual(files.filter((f) => f !== 'kustomization.yaml' && f !== 'worker-sglang.yaml').sort());
    const workloads = all.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet');
    expect(workloads.map((o) => `${o.kind} ${o.metadata.name}`).sort()).toEqual([
      'Deployment kvgate-frontend',
      'Deployment kvgate-nats',
      'Deployment kvgate-worker-sglang',
      'StatefulSet kvgate-etcd',
      'StatefulSet kvgate-worker',
    ]);
    const services = all.filter((o) => o.kind === 'Service');
    for (const w of workloads) {
      const spec = w.spec as { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> } }; serviceName?: string };
      expect(spec.template.metadata.labels).toMatchObject(spec.selector.matchLabels);
      if (spec.serviceName) expect(services.map((s) => s.metadata.name)).toContain(spec.serviceName);
    }
    for (const s of services) {
      const selector = (s.spec as { selector: Record<string, string> }).selector;
      expect(workloads.some((w) => Object.entries(selector).every(([k, v]) => (w.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels[k] === v)), s.metadata.name).toBe(true);
    }
    // The ConfigMap's URLs name those Services.
    expect(config['DISCOVERY']).toBe('etcd://kvgate-etcd:2379');
    expect(config['EVENT_PLANE']).toBe('nats://kvgate-nats:4222');
  });

  it('runs valid kvgate command lines, with $(VAR) from the ConfigMap and the pod IP, secrets from the mounted Secret', () => {
    const runs: Run[] = [];
    for (const o of all) {
      if (o.kind !== 'Deployment' && o.kind !== 'StatefulSet') continue;
      const pod = (o.spec as { template: { spec: PodSpec } }).template.spec;
      for (const c of pod.containers.filter((x) => x.image.startsWith('kvgate'))) {
        const vars: Record<string, string> = {};
        for (const ref of c.envFrom ?? []) {
          expect(ref.configMapRef.name).toBe('kvgate-config');
          Object.assign(vars, config);
        }
        for (const e of c.env ?? []) vars[e.name] = e.value ?? (JSON.stringify(e.valueFrom).includes('status.podIP') ? '10.1.2.3' : '');
        const argv = c.args!.map((a) => a.replace(/\$\((\w+)\)/g, (_, v: string) => (expect(vars, `${o.metadata.name}: $(${v})`).toHaveProperty(v), vars[v]!)));
        const run = kvgateRun(argv);
        runs.push(run);
        const mount = c.volumeMounts!.find((m) => m.name === 'secrets')!;
        expect(pod.volumes!.find((v) => v.name === 'secrets')!.secret!.secretName).toBe('kvgate-secrets');
        for (const f of secretFiles(run)) expect(f.startsWith(mount.mountPath + '/')).toBe(true);
        if (run.sub === 'worker') expect((run.flags as { advertiseHost: string }).advertiseHost).toBe('10.1.2.3');
      }
    }
    expect(runs.map((r) => (r.sub === 'worker' ? `worker ${(r.flags as { engine: string }).engine}` : r.sub)).sort()).toEqual(['serve', 'worker mocker', 'worker sglang']);
  });
});

describe('deploy/slurm/kvgate.sbatch', () => {
  const script = join(root, 'deploy/slurm/kvgate.sbatch');

  it('passes shellcheck', () => {
    execFileSync('shellcheck', [script], { stdio: 'pipe' });
  });

  it('starts etcd and NATS and the frontend on the first node and a worker on each other node, with valid kvgate command lines', () => {
    // Stand-ins: scontrol expands the node list; srun records its arguments and returns.
    const bin = join(tmp, 'bin');
    const log = join(tmp, 'srun');
    execFileSync('mkdir', ['-p', bin, log]);
    writeFileSync(join(bin, 'scontrol'), '#!/bin/sh\nprintf "gpu01\\ngpu02\\ngpu03\\n"\n');
    writeFileSync(join(bin, 'srun'), '#!/bin/sh\nf=$(mktemp "$SRUN_LOG/XXXXXX")\nprintf "%s\\0" "$@" > "$f"\n');
    chmodSync(join(bin, 'scontrol'), 0o755);
    chmodSync(join(bin, 'srun'), 0o755);
    const r = spawnSync('bash', [script], {
      env: { PATH: `${bin}:${process.env['PATH']}`, HOME: tmp, SLURM_JOB_ID: '42', SLURM_JOB_NODELIST: 'gpu[01-03]', SRUN_LOG: log },
      encoding: 'utf8',
      timeout: 20_000,
    });
    // It stops when the first step ends (here at once).
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('kvgate: http://gpu01:8000/v1 (model Qwen/Qwen3-0.6B, 2 worker node(s))');
    const steps = readdirSync(log).map((f) => readFileSync(join(log, f), 'utf8').split('\0').slice(0, -1));
    const node = (argv: string[]) => argv.find((a) => a.startsWith('--nodelist='))!.slice('--nodelist='.length);
    const command = (argv: string[]) => argv.slice(argv.findIndex((a) => !a.startsWith('--')));
    const byProgram = (p: string) => steps.filter((s) => command(s)[0] === p);
    expect(byProgram('etcd').map(node)).toEqual(['gpu01']);
    expect(byProgram('nats-server').map(node)).toEqual(['gpu01']);
    const kvgate = byProgram('kvgate').map((s) => ({ node: node(s), run: kvgateRun(command(s).slice(1)) }));
    const serve = kvgate.filter((k) => k.run.sub === 'serve');
    const workers = kvgate.filter((k) => k.run.sub === 'worker');
    expect(serve.map((k) => k.node)).toEqual(['gpu01']);
    expect(workers.map((k) => k.node).sort()).toEqual(['gpu02', 'gpu03']);
    for (const k of kvgate) {
      expect(k.run.flags).toMatchObject({ discovery: 'etcd://gpu01:2379', eventPlane: 'nats://gpu01:4222' });
      // The per-job secrets exist, readable by the user only.
      for (const f of secretFiles(k.run)) {
        expect(f.startsWith(join(tmp, '.kvgate/job-42/'))).toBe(true);
        expect(readFileSync(f, 'utf8')).toMatch(/^[0-9a-f]{64}\n$/);
        expect(execFileSync('stat', ['-c', '%a', f], { encoding: 'utf8' }).trim()).toBe('600');
      }
    }
    for (const w of workers) {
      expect(w.run.flags).toMatchObject({ engine: 'sglang', advertiseHost: w.node, host: '0.0.0.0' });
      expect(w.run.engineArgs).toEqual(['--model-path', 'Qwen/Qwen3-0.6B', '--page-size', '16']);
    }
  });
});
