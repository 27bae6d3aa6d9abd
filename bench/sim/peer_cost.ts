// The router-cost bench's peer: Dynamo's indexer (dynamo.llm.RadixTree from the Dynamo 1.6.1
// venv the gateway bench installs) on the same index and the same queries as kvgate's
// findMatches, in the same run. kvgate builds the index from a cost fleet (cost_fleets.ts) and
// answers the queries; the same stored events, queries (as local block hashes), the first
// queries' tokens and kvgate's answers go to a file that router_cost_dynamo.py replays into
// Dynamo's tree. That script checks that Dynamo hashes the tokens to the same local hashes and
// finds the same overlap per worker before it times anything, and measures the binding's hop
// (its find_matches of the same queries missing at their first block) apart from the walk.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addon } from '../../src/native/addon.js';
import { defaultCacheDir, DYNAMO_VERSION } from '../gateway/peers.js';
import { queryPicker, type CostFleet } from './cost_fleets.js';
import { pct } from './router_cost.js';

const DRIVER = fileURLToPath(new URL('./router_cost_dynamo.py', import.meta.url));
const WARMUP = 200; // queries run before timing (router_cost_dynamo.py skips as many)
const HASH_CHECKS = 200; // queries whose tokens Dynamo hashes itself (checked, then timed)
const MATCH_CHECKS = 100; // queries whose matches are compared

export interface CallCost {
  p50: number; // µs, wall
  p99: number;
  cpuP50: number; // µs of process CPU time (kvgate: getrusage, µs resolution; Dynamo: every thread)
  cpuP99: number;
  perSec: number;
  perCpuSec: number;
}

export interface DynamoCost {
  events: number;
  blocks: number;
  buildSeconds: number;
  queries: number;
  hashChecked: number;
  hashMismatches: number;
  matchChecked: number;
  matchMismatches: number;
  find: CallCost; // find_matches(local hashes)
  hash: CallCost; // compute_block_hash_for_seq(tokens), on the first HASH_CHECKS queries
  hopOneBlock: CallCost; // find_matches of a one-block query that matches nothing
  hopQuery: CallCost; // find_matches of each query with its first block replaced by one that matches nothing
  walk: { p50: number; p99: number }; // per query: find_matches less its missing copy right before it, µs
}

export interface PeerCost {
  fleet: string;
  workers: number;
  queryBlocks: number; // mean blocks per measured query
  indexPairs: number;
  kvgateTokens: CallCost; // findMatches(prompt tokens): hashing and the walk
  kvgateHashes: CallCost; // findMatches(local hashes): the walk alone
  kvgateMiss: CallCost; // findMatches of one local hash that matches nothing: the call alone
  dynamo: DynamoCost;
}

// The Dynamo venv's python, or why there is none (the bench skips the peer then).
export function dynamoPython(): { python: string } | { missing: string } {
  const dir = join(defaultCacheDir(), `dynamo-${DYNAMO_VERSION}`);
  const python = join(dir, 'bin', 'python');
  const marker = join(dir, '.kvgate-bench-installed');
  if (existsSync(python) && existsSync(marker) && readFileSync(marker, 'utf8') === `ai-dynamo==${DYNAMO_VERSION}`) return { python };
  return { missing: `no Dynamo ${DYNAMO_VERSION} venv at ${dir} (\`npm run bench:gateway\` installs it; KVGATE_BENCH_CACHE moves it)` };
}

// Little-endian file chunks; layout read by router_cost_dynamo.py.
class IndexFile {
  private chunks: Buffer[] = [];
  raw(b: Buffer | ArrayBufferView): void {
    this.chunks.push(Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  }
  append(other: IndexFile): void {
    for (const c of other.chunks) this.chunks.push(c);
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.chunks.push(b);
  }
  u64(v: bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, v));
    this.chunks.push(b);
  }
  array(a: BigInt64Array | BigUint64Array | Uint32Array): void {
    this.u32(a.length);
    this.raw(a);
  }
  write(path: string): void {
    writeFileSync(path, Buffer.concat(this.chunks));
  }
}

function timeCalls(queries: readonly (Uint32Array | BigUint64Array)[], call: (q: Uint32Array | BigUint64Array) => void): CallCost {
  const wall = new Float64Array(queries.length);
  const cpu = new Float64Array(queries.length);
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  queries.forEach((q, i) => {
    const c0 = process.cpuUsage();
    const a = process.hrtime.bigint();
    call(q);
    wall[i] = Number(process.hrtime.bigint() - a) / 1000;
    const c = process.cpuUsage(c0);
    cpu[i] = c.user + c.system;
  });
  const seconds = (performance.now() - start) / 1000;
  const c = process.cpuUsage(cpuStart);
  return { p50: pct(wall, 0.5), p99: pct(wall, 0.99), cpuP50: pct(cpu, 0.5), cpuP99: pct(cpu, 0.99), perSec: queries.length / seconds, perCpuSec: (queries.length * 1e6) / (c.user + c.system) };
}

// kvgate's findMatches and Dynamo's find_matches on `fleet` at `workers`, `count` queries each.
export function peerCost(python: string, fleet: CostFleet, workers: number, count = 5000): PeerCost {
  const bs = fleet.blockSize;
  const router = new addon.KvRouter({ blockSize: bs, seed: 1 });
  for (let w = 0; w < workers; w++) router.addWorker(w, 0);
  const file = new IndexFile();
  file.raw(Buffer.from('KVGP'));
  file.u32(bs);
  const eventsFile = new IndexFile();
  let nEvents = 0;
  const prompts = fleet.build(workers, (w, parent, tokens, hashes) => {
    const status = router.applyStored(w, 0, parent, tokens, hashes);
    if (status !== 'ok') throw new Error(`${fleet.name} fleet: kvgate refused a stored event of worker ${w} (${status})`);
    eventsFile.u32(w);
    eventsFile.u32(parent === null ? 0 : 1);
    eventsFile.u64(parent ?? 0n);
    eventsFile.array(hashes);
    eventsFile.raw(addon.blockHashes(tokens, bs));
    nEvents++;
  });
  file.u32(nEvents);
  file.append(eventsFile);

  const pick = queryPicker(prompts.length);
  const picked = Array.from({ length: WARMUP + count }, () => prompts[pick()]!);
  const hashed = picked.map((p) => addon.blockHashes(p, bs));
  file.u32(hashed.length);
  for (const h of hashed) file.array(h);
  const measuredTokens = picked.slice(WARMUP);
  file.u32(Math.min(HASH_CHECKS, count));
  for (const t of measuredTokens.slice(0, HASH_CHECKS)) file.array(t);

  const units = router.stats().units;
  const outW = new Uint32Array(units);
  const outR = new Uint32Array(units);
  const outD = new Uint32Array(units);
  const measuredHashes = hashed.slice(WARMUP);
  file.u32(Math.min(MATCH_CHECKS, count));
  for (const h of measuredHashes.slice(0, MATCH_CHECKS)) {
    const n = router.findMatches(h, outW, outR, outD);
    const pairs = new Uint32Array(2 * n);
    for (let i = 0; i < n; i++) [pairs[2 * i], pairs[2 * i + 1]] = [outW[i]!, outD[i]!];
    file.u32(n);
    file.raw(pairs);
  }

  // kvgate: the prompt's tokens (hashed, then walked), and its local hashes (the walk alone).
  for (const p of picked.slice(0, WARMUP)) router.findMatches(p, outW, outR, outD);
  const kvgateTokens = timeCalls(measuredTokens, (q) => router.findMatches(q, outW, outR, outD));
  const kvgateHashes = timeCalls(measuredHashes, (q) => router.findMatches(q, outW, outR, outD));
  const miss = BigUint64Array.of(0n); // as in router_cost_dynamo.py, no stored block has local hash 0
  if (router.findMatches(miss, outW, outR, outD) !== 0) throw new Error('a stored block has local hash 0: the miss query would match');
  const kvgateMiss = timeCalls(measuredHashes.map(() => miss), (q) => router.findMatches(q, outW, outR, outD));
  const indexPairs = router.stats().pairs;
  router.close();

  const dir = mkdtempSync(join(tmpdir(), 'kvgate-peer-cost-'));
  try {
    const path = join(dir, 'index.bin');
    file.write(path);
    const res = spawnSync(python, [DRIVER, path], { encoding: 'utf8', maxBuffer: 16 << 20, timeout: 1_800_000 });
    if (res.status !== 0) throw new Error(`Dynamo driver (${python} ${DRIVER}) failed (${res.error?.message ?? `exit ${res.status}`}):\n${res.stderr.trim().split('\n').slice(-12).join('\n')}`);
    const dynamo = JSON.parse(res.stdout) as DynamoCost;
    if (dynamo.hashMismatches > 0 || dynamo.matchMismatches > 0) {
      throw new Error(`Dynamo's index differs from kvgate's (${dynamo.hashMismatches} of ${dynamo.hashChecked} queries hashed differently, ${dynamo.matchMismatches} of ${dynamo.matchChecked} matched differently): the comparison would not be on the same index`);
    }
    const queryBlocks = measuredHashes.reduce((s, h) => s + h.length, 0) / measuredHashes.length;
    return { fleet: fleet.name, workers, queryBlocks, indexPairs, kvgateTokens, kvgateHashes, kvgateMiss, dynamo };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// The side-by-side table (markdown) of peerCost rows. Dynamo's walk is estimated per query as its
// find_matches less that of the same query missing at its first block, timed right before it
// (the binding's conversion of the query and its hop to the indexer's thread, no walk).
export function peerTable(rows: readonly PeerCost[]): string {
  const f = (c: CallCost) => `${c.p50.toFixed(1)} / ${c.p99.toFixed(1)}`;
  const k = (x: number) => `${(x / 1000).toFixed(1)} K`;
  const lines = [
    '| fleet | workers | blocks per query | kvgate findMatches(tokens) p50 / p99 µs | kvgate findMatches(local hashes) p50 / p99 µs | kvgate 1 block missing p50 µs | kvgate calls per CPU s | Dynamo find_matches(local hashes) p50 / p99 µs | Dynamo CPU p50 / p99 µs | Dynamo calls per CPU s | Dynamo query missing at block 1, p50 µs: 1 block / same length | Dynamo walk ≈ p50 / p99 µs | Dynamo compute_block_hash_for_seq p50 µs | find p50 Dynamo / kvgate | calls per CPU s kvgate / Dynamo |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    const d = r.dynamo;
    lines.push(
      `| ${r.fleet} | ${r.workers.toLocaleString('en-US')} | ${r.queryBlocks.toFixed(0)} | ${f(r.kvgateTokens)} | ${f(r.kvgateHashes)} | ${r.kvgateMiss.p50.toFixed(2)} | ${k(r.kvgateHashes.perCpuSec)} | ${f(d.find)} | ${d.find.cpuP50.toFixed(1)} / ${d.find.cpuP99.toFixed(1)} | ${k(d.find.perCpuSec)} | ${d.hopOneBlock.p50.toFixed(1)} / ${d.hopQuery.p50.toFixed(1)} | ${d.walk.p50.toFixed(1)} / ${d.walk.p99.toFixed(1)} | ${d.hash.p50.toFixed(1)} | ${(d.find.p50 / r.kvgateHashes.p50).toFixed(2)}x | ${(r.kvgateHashes.perCpuSec / d.find.perCpuSec).toFixed(2)}x |`,
    );
  }
  return lines.join('\n');
}
