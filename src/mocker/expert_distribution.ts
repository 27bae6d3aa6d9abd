// SGLang's expert-distribution recorder, simulated (facts from SGLang's
// srt/eplb/expert_distribution.py and http_server.py). Three routes drive one state machine:
// - /start_expert_distribution_record: clears what was recorded and starts recording (SGLang
//   logs a warning when it was already recording);
// - /stop_expert_distribution_record: stops recording (a warning when it was not);
// - /dump_expert_distribution_record: writes what was recorded to a file and clears it; whether
//   it records stays as it was.
// Each answers 200 with SGLang's text. Without --expert-distribution-recorder-mode SGLang's
// recorder is a no-op that raises "Please set ServerArgs.expert_distribution_recorder_mode ..."
// inside the scheduler; the mocker answers that message as a 400 instead of failing.
//
// What is recorded: the mocker's model has no experts, so every token of every forward pass
// (prefill chunks and decode steps) is routed through a fixed simulated MoE shape, SIMULATED_MOE,
// to top-k distinct experts picked by a hash of (token id, layer). Same tokens, same experts.
// The file, like SGLang's stat mode, holds {rank: 0, logical_count: [pass][layer][expert],
// average_utilization_rate_over_window: null}: the last --expert-distribution-recorder-buffer-size
// forward passes, each the sum over the dp ranks of their pass with that index (SGLang sums the
// ranks with an all_reduce). SGLang writes that dict with torch.save as
// expert_distribution_recorder_<unix time>.pt; the mocker writes it as JSON, .json, in the same
// directory ($SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR, default /tmp).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const SIMULATED_MOE = { layers: 16, experts: 64, topK: 4 } as const;

export const EXPERT_RECORD_TEXT = {
  start: 'Start recording the expert distribution.\n',
  stop: 'Stop recording the expert distribution.\n',
  dump: 'Dump expert distribution record.\n',
} as const;

export const NO_RECORDER_MODE = 'Please set ServerArgs.expert_distribution_recorder_mode to use ExpertDistributionRecorder.';

export type RecorderMode = 'stat' | 'stat_approx';

export interface ExpertDump {
  rank: number;
  logical_count: number[][][];
  average_utilization_rate_over_window: null;
}

// The forward-pass hook the schedulers call (cheap to test when not recording).
export interface ForwardPassRecorder {
  readonly recording: boolean;
  record(rank: number, tokenIds: readonly number[]): void;
}

function mix(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x7f4a7c15, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return (h ^ (h >>> 13)) >>> 0;
}

export class ExpertDistributionRecorder implements ForwardPassRecorder {
  recording = false;
  // Per dp rank, its recorded passes (oldest first), each layers x experts counts.
  private passes: Float64Array[][];

  constructor(
    readonly mode: RecorderMode | null,
    private readonly dpSize: number,
    private readonly bufferSize: number, // -1: unbounded
    private readonly dir: string,
    private readonly warn: (msg: string) => void,
  ) {
    this.passes = Array.from({ length: dpSize }, () => []);
  }

  // Throws NO_RECORDER_MODE when the engine was started without a recorder mode.
  start(): void {
    this.check();
    if (this.recording) {
      this.warn('SGLang server is already recording expert ids. Did you forget to dump the expert ids recorded so far by sending requests to the `/stop_expert_distribution_record` and `/dump_expert_distribution_record` endpoints?');
    }
    this.reset();
    this.recording = true;
  }

  stop(): void {
    this.check();
    if (!this.recording) {
      this.warn('SGLang server has not been recording expert ids. Did you forget to start recording by sending request to the `/start_expert_distribution_record` endpoint?');
    }
    this.recording = false;
  }

  // What a dump holds now, then cleared.
  take(): ExpertDump {
    this.check();
    const { layers, experts } = SIMULATED_MOE;
    const n = Math.max(...this.passes.map((p) => p.length));
    const logical: number[][][] = [];
    for (let i = 0; i < n; i++) {
      const sum = new Float64Array(layers * experts);
      for (const rank of this.passes) {
        const p = rank[i];
        if (p) for (let j = 0; j < sum.length; j++) sum[j]! += p[j]!;
      }
      logical.push(Array.from({ length: layers }, (_, l) => Array.from(sum.subarray(l * experts, (l + 1) * experts))));
    }
    this.reset();
    return { rank: 0, logical_count: logical, average_utilization_rate_over_window: null };
  }

  // The dump route: the file SGLang's rank 0 writes; returns its path.
  dump(): string {
    const data = this.take();
    mkdirSync(this.dir, { recursive: true });
    // Unix seconds with microseconds, as Python's time.time() names SGLang's files.
    const path = join(this.dir, `expert_distribution_recorder_${((performance.timeOrigin + performance.now()) / 1000).toFixed(6)}.json`);
    writeFileSync(path, JSON.stringify(data));
    return path;
  }

  record(rank: number, tokenIds: readonly number[]): void {
    if (!this.recording || tokenIds.length === 0) return;
    const { layers, experts, topK } = SIMULATED_MOE;
    const counts = new Float64Array(layers * experts);
    for (const t of tokenIds) {
      for (let l = 0; l < layers; l++) {
        const h = mix(t, l);
        // An odd stride over a power-of-two expert count visits topK distinct experts.
        const stride = ((h >>> 16) | 1) % experts;
        for (let k = 0; k < topK; k++) counts[l * experts + ((h + k * stride) % experts)]! += 1;
      }
    }
    const buf = this.passes[rank]!;
    buf.push(counts);
    if (this.bufferSize >= 0 && buf.length > this.bufferSize) buf.shift();
  }

  private reset(): void {
    this.passes = Array.from({ length: this.dpSize }, () => []);
  }

  private check(): void {
    if (this.mode === null) throw new Error(NO_RECORDER_MODE);
  }
}
