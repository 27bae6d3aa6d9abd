// The peers of bench:gateway, installed from PyPI into a cache folder outside the project
// (nothing of theirs enters the repository): NVIDIA Dynamo 1.6.1 (frontend + mocker) and
// NVIDIA's load client aiperf 0.13.0, each in its own venv, plus the one local model folder
// both sides load their tokenizer from.

import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { defaultModelDir } from '../../src/preprocess/model_files.js';

export const DYNAMO_VERSION = '1.6.1';
export const AIPERF_VERSION = '0.13.0';
export const MODEL_NAME = 'Qwen/Qwen3-0.6B';

export function defaultCacheDir(): string {
  return process.env['KVGATE_BENCH_CACHE'] ?? join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'kvgate-bench');
}

export interface Peers {
  dynamoPython: string; // the venv's python, for `-m dynamo.frontend` / `-m dynamo.mocker`
  aiperf: string; // the aiperf executable
  modelDir: string;
}

// Runs a command to completion with its output appended to `logPath`; rejects with the
// log's tail (what pip said) when it fails or runs past `timeoutMs`.
function run(cmd: string, args: string[], logPath: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PIP_DISABLE_PIP_VERSION_CHECK: '1' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const finish = (problem: string | null) => {
      clearTimeout(timer);
      writeFileSync(logPath, `$ ${cmd} ${args.join(' ')}\n${out}\n`, { flag: 'a' });
      if (problem === null) resolve(out);
      else reject(new Error(`${cmd} ${args.slice(0, 4).join(' ')}... ${problem}; full log: ${logPath}\n${out.trimEnd().split('\n').slice(-12).join('\n')}`));
    };
    child.on('error', (err) => finish(`could not start (${err.message})`));
    child.on('exit', (code, signal) => finish(code === 0 ? null : signal ? `killed (${signal}; timeout ${timeoutMs / 1000} s?)` : `failed with exit code ${code}`));
  });
}

// A venv is reused when its marker names the same install; otherwise it is rebuilt from scratch.
async function venv(dir: string, marker: string, python: string, log: string, install: (py: string, pip: string) => Promise<void>): Promise<string> {
  const markerPath = join(dir, '.kvgate-bench-installed');
  const py = join(dir, 'bin', 'python');
  if (existsSync(markerPath) && readFileSync(markerPath, 'utf8') === marker && existsSync(py)) return py;
  rmSync(dir, { recursive: true, force: true });
  await run(python, ['-m', 'venv', dir], log, 120_000);
  await install(py, join(dir, 'bin', 'pip'));
  writeFileSync(markerPath, marker);
  return py;
}

// Dynamo: `pip install ai-dynamo==1.6.1` would pull `aisimulate`, which downloads from an
// index outside the registries and only serves the mocker's --ais-perf-model. So: both wheels
// without dependencies, then every other requirement they declare (no extras).
async function installDynamo(cache: string, python: string, say: (s: string) => void): Promise<string> {
  const dir = join(cache, `dynamo-${DYNAMO_VERSION}`);
  const log = join(cache, 'install-dynamo.log');
  return venv(dir, `ai-dynamo==${DYNAMO_VERSION}`, python, log, async (py, pip) => {
    say(`installing NVIDIA Dynamo ${DYNAMO_VERSION} from PyPI into ${dir} (log: ${log}) ...`);
    const wheels = join(dir, 'wheels');
    const pkgs = [`ai-dynamo==${DYNAMO_VERSION}`, `ai-dynamo-runtime==${DYNAMO_VERSION}`];
    await run(pip, ['download', '--no-deps', '-d', wheels, ...pkgs], log, 900_000);
    const files = readdirSync(wheels).filter((f) => f.endsWith('.whl'));
    if (files.length !== 2) throw new Error(`Dynamo: expected 2 wheels in ${wheels}, found ${files.join(', ') || 'none'} (see ${log})`);
    await run(pip, ['install', '--no-deps', ...files.map((f) => join(wheels, f))], log, 900_000);
    const reqs = declaredRequirements(dir, ['ai_dynamo', 'ai_dynamo_runtime']).filter((r) => !/^(aisimulate|ai-dynamo-runtime)\b/i.test(r));
    await run(pip, ['install', ...reqs], log, 1_800_000);
    await run(py, ['-c', 'import dynamo.frontend, dynamo.mocker, dynamo.llm'], log, 120_000);
    rmSync(wheels, { recursive: true, force: true });
  });
}

// The Requires-Dist lines of installed distributions, without the ones behind an extra.
function declaredRequirements(venvDir: string, dists: string[]): string[] {
  const lib = join(venvDir, 'lib');
  const pyDir = readdirSync(lib).find((d) => d.startsWith('python'));
  if (!pyDir) throw new Error(`no lib/python* in ${venvDir}`);
  const site = join(lib, pyDir, 'site-packages');
  const reqs: string[] = [];
  for (const dist of dists) {
    const info = readdirSync(site).find((d) => d.startsWith(`${dist}-`) && d.endsWith('.dist-info'));
    if (!info) throw new Error(`${dist} is not installed in ${site}`);
    for (const line of readFileSync(join(site, info, 'METADATA'), 'utf8').split('\n')) {
      const m = /^Requires-Dist: (.+)$/.exec(line.trim());
      if (m && !/\bextra\s*==/.test(m[1]!)) reqs.push(m[1]!);
    }
  }
  return reqs;
}

async function installAiperf(cache: string, python: string, say: (s: string) => void): Promise<string> {
  const dir = join(cache, `aiperf-${AIPERF_VERSION}`);
  const log = join(cache, 'install-aiperf.log');
  await venv(dir, `aiperf==${AIPERF_VERSION}`, python, log, async (_py, pip) => {
    say(`installing aiperf ${AIPERF_VERSION} from PyPI into ${dir} (log: ${log}) ...`);
    await run(pip, ['install', `aiperf==${AIPERF_VERSION}`], log, 1_800_000);
  });
  return join(dir, 'bin', 'aiperf');
}

// Qwen3-0.6B's public architecture facts (its model card: 0.6B parameters, 28 layers, 16 query
// and 8 KV heads of 128, hidden 1,024, context 32,768 native / 40,960 configured, tied
// embeddings, bf16), enough for Dynamo's model-card reader; no weights are involved.
const QWEN3_06B_CONFIG = {
  architectures: ['Qwen3ForCausalLM'],
  model_type: 'qwen3',
  hidden_size: 1024,
  intermediate_size: 3072,
  num_hidden_layers: 28,
  num_attention_heads: 16,
  num_key_value_heads: 8,
  head_dim: 128,
  hidden_act: 'silu',
  max_position_embeddings: 40960,
  max_window_layers: 28,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000,
  rope_scaling: null,
  attention_bias: false,
  attention_dropout: 0.0,
  sliding_window: null,
  use_sliding_window: false,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 151936,
  bos_token_id: 151643,
  eos_token_id: 151645,
};

const QWEN3_06B_GENERATION = {
  bos_token_id: 151643,
  eos_token_id: [151645, 151643],
  pad_token_id: 151643,
  do_sample: true,
  temperature: 0.6,
  top_p: 0.95,
  top_k: 20,
};

// The model folder: kvgate's packaged Qwen3 tokenizer files plus the two configs above.
export function writeModelDir(cache: string): string {
  const dir = join(cache, 'model-qwen3-0.6b');
  mkdirSync(dir, { recursive: true });
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(defaultModelDir(), f), join(dir, f));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(QWEN3_06B_CONFIG, null, 2) + '\n');
  writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(QWEN3_06B_GENERATION, null, 2) + '\n');
  return dir;
}

export async function ensurePeers(opts: { cache: string; python: string; dynamo: boolean; say: (s: string) => void }): Promise<Peers> {
  mkdirSync(opts.cache, { recursive: true });
  const aiperf = await installAiperf(opts.cache, opts.python, opts.say);
  const dynamoPython = opts.dynamo ? await installDynamo(opts.cache, opts.python, opts.say) : '';
  return { aiperf, dynamoPython, modelDir: writeModelDir(opts.cache) };
}
