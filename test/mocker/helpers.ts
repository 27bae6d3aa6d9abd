// Test helpers for the mocker: an SSE reader, HTTP shortcuts, and a ZMQ subscriber that decodes
// SGLang KV-event frames with @msgpack/msgpack (independent of the project's own readers).

import { decode } from '@msgpack/msgpack';
import { expect } from 'vitest';
import * as zmq from 'zeromq';
import { startMocker, type MockerHandle, type MockerOptions } from '../../src/mocker/index.js';

export const handles: MockerHandle[] = [];

// Start a mocker for a test; `closeAll` in afterEach stops it.
export async function mocker(opts: Partial<MockerOptions> = {}): Promise<MockerHandle> {
  const m = await startMocker({ port: 0, speedupRatio: 50, ...opts });
  handles.push(m);
  await m.ready;
  return m;
}

export async function closeAll(): Promise<void> {
  const hs = handles.splice(0);
  await Promise.all(hs.map((h) => h.close(0)));
}

export async function post(url: string, body: unknown, init: RequestInit = {}): Promise<{ status: number; text: string; json: () => any; headers: Headers }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text), headers: res.headers };
}

export async function get(url: string): Promise<{ status: number; text: string; json: () => any; headers: Headers }> {
  const res = await fetch(url);
  const text = await res.text();
  return { status: res.status, text, json: () => JSON.parse(text), headers: res.headers };
}

// The `data:` payloads of an SSE body, in order ("[DONE]" kept as a string).
export function sseEvents(body: string): unknown[] {
  expect(body.endsWith('\n\n')).toBe(true);
  return body
    .split('\n\n')
    .filter((block) => block.length > 0)
    .map((block) => {
      expect(block.startsWith('data: ')).toBe(true);
      const data = block.slice(6);
      return data === '[DONE]' ? data : JSON.parse(data);
    });
}

export async function generate(m: MockerHandle, body: Record<string, unknown>): Promise<any> {
  const r = await post(`${m.url}/generate`, body);
  expect(r.status).toBe(200);
  return body.stream ? sseEvents(r.text) : r.json();
}

export interface Batch {
  topic: string;
  seq: bigint;
  ts: number;
  events: any[];
  dpRank: number | null | undefined;
}

export function decodeBatch(frames: Buffer[]): Batch {
  expect(frames.length).toBe(3);
  const [topic, seq, payload] = frames as [Buffer, Buffer, Buffer];
  expect(seq.length).toBe(8);
  const batch = decode(payload, { useBigInt64: true }) as unknown[];
  expect(Array.isArray(batch)).toBe(true);
  return { topic: topic.toString('utf8'), seq: seq.readBigUInt64BE(0), ts: batch[0] as number, events: batch[1] as any[], dpRank: batch[2] as number | null | undefined };
}

// A SUB socket on one KV-event port, collecting decoded batches.
export class EventTap {
  readonly batches: Batch[] = [];
  // What live() saw before the test started.
  readonly warmup: Batch[] = [];
  private readonly sub = new zmq.Subscriber({ linger: 0 });
  private loop: Promise<void> = Promise.resolve();
  constructor(port: number | null, topic = '') {
    this.sub.subscribe(topic);
    if (port !== null) {
      this.sub.connect(`tcp://127.0.0.1:${port}`);
      this.start();
    }
  }

  // A SUB that binds, for a publisher that connects (SGLang's rule for a concrete endpoint host).
  static async bound(): Promise<{ tap: EventTap; port: number }> {
    const tap = new EventTap(null);
    await tap.sub.bind('tcp://127.0.0.1:*');
    tap.start();
    return { tap, port: Number(/:(\d+)$/.exec(tap.sub.lastEndpoint!)![1]) };
  }

  private start(): void {
    this.loop = (async () => {
      try {
        for await (const frames of this.sub) this.batches.push(decodeBatch(frames as Buffer[]));
      } catch {
        // closed
      }
    })();
  }

  // ZMQ drops PUB messages until the subscription has reached the publisher ("slow joiner"):
  // send throw-away requests until one of their batches shows up, then start clean.
  // A PD prefill engine needs a room: warm up with SGLang's fake bootstrap host.
  async live(m: MockerHandle, rank = 0, extra: Record<string, unknown> = {}): Promise<void> {
    for (let i = 0; i < 200; i++) {
      await post(`${m.url}/generate`, { input_ids: [90000 + i, ...Array(39).fill(7)], sampling_params: { max_new_tokens: 1 }, routed_dp_rank: rank, ...extra });
      if (await this.waitFor(() => this.batches.length > 0, 100).then(() => true, () => false)) break;
    }
    expect(this.batches.length).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 50));
    this.warmup.push(...this.batches.splice(0));
  }

  async waitFor(cond: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > deadline) throw new Error('timed out waiting for KV events');
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  events(): any[] {
    return this.batches.flatMap((b) => b.events);
  }

  async close(): Promise<void> {
    this.sub.close();
    await this.loop;
  }
}

// Ask a replay ROUTER for every buffered batch from `start` on; returns the reply frames up to and
// including the terminator.
export async function replay(port: number, start: bigint): Promise<Buffer[][]> {
  const dealer = new zmq.Dealer({ linger: 0, receiveTimeout: 5000 });
  dealer.connect(`tcp://127.0.0.1:${port}`);
  const startBuf = Buffer.alloc(8);
  startBuf.writeBigUInt64BE(start);
  await dealer.send([Buffer.alloc(0), startBuf]);
  const replies: Buffer[][] = [];
  try {
    for (;;) {
      const frames = (await dealer.receive()) as Buffer[];
      replies.push(frames);
      const seqFrame = frames[frames.length - 2]!;
      if (seqFrame.length === 8 && seqFrame.readBigInt64BE(0) === -1n) break;
    }
  } finally {
    dealer.close();
  }
  return replies;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Poll until `cond` holds (tests wait for state, never for a fixed time).
export async function until(cond: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

// Requests the engine holds (all DP ranks), from /get_load.
export async function inFlight(m: { url: string }): Promise<number> {
  const load = (await (await fetch(`${m.url}/get_load`)).json()) as { num_reqs: number }[];
  return load.reduce((n, r) => n + r.num_reqs, 0);
}
