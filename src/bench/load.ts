// Drives a workload at a target: a fixed number of requests in flight (closed loop), Poisson
// arrivals at a fixed rate, or a trace's own timestamps (open loop); an optional warm-up phase
// first; stops issuing after a count or a duration, then waits for what is in flight.
// Multi-turn follow-ups (the workload's followUp) are sent when due, before new conversations.

import type { Outcome, Target } from './client.js';
import { idsToText } from './prompts.js';
import type { Sample } from './stats.js';
import { rng, tokenAt, type Arrival, type Workload } from './workloads.js';

export type LoadMode = { kind: 'concurrency'; n: number } | { kind: 'rate'; perSec: number } | { kind: 'schedule' };

export interface LoadOptions {
  mode: LoadMode;
  requests: number; // measured requests (Infinity: the whole workload)
  durationMs: number; // Infinity: no time limit
  warmup: number;
  seed: number;
  text: boolean; // send prompts as text (prompts.ts) instead of token ids
  onProgress?(done: number, failed: number): void;
}

export interface LoadResult {
  samples: Sample[];
  durationS: number;
}

// An arrival with its rendered prompt: multi-turn text prompts carry the server's answers
// verbatim, so they are built from the previous turn's text, not from ids.
interface Item extends Arrival {
  text?: string;
}

export async function runLoad(target: Target, workload: Workload, o: LoadOptions): Promise<LoadResult> {
  const rand = rng(o.seed ^ 0x5bd1e995);
  const followUps: Item[] = []; // sorted by `at`
  let peek: Item | null = null;
  let exhausted = false;
  let inFlight = 0;
  let waiters: Array<() => void> = [];
  const notify = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  let clock0 = performance.now();
  const now = () => performance.now() - clock0;

  const prompt = (it: Item): readonly number[] | string => (o.text ? (it.text ??= idsToText(it.tokens)) : it.tokens);

  // The next turn of a conversation. OpenAI APIs return text, not ids: stand-in ids of the
  // answer's length keep the token-id prompt's shape, and text prompts use the answer itself.
  const followUp = (done: Item, out: Outcome) => {
    if (!workload.followUp || out.error) return;
    const ids = out.outputIds ?? Array.from({ length: out.outputTokens }, (_, i) => tokenAt(o.seed, 3_000_000 + (done.session ?? 0) * 1000 + (done.turn ?? 0), i));
    const next: Item | null = workload.followUp(done, ids, now());
    if (!next) return;
    if (o.text) next.text = prompt(done) + out.outputText + idsToText(next.tokens.slice(done.tokens.length + ids.length));
    let i = followUps.length;
    while (i > 0 && followUps[i - 1]!.at > next.at) i--;
    followUps.splice(i, 0, next);
  };

  async function phase(count: number, durationMs: number, record: Sample[] | null): Promise<void> {
    clock0 = performance.now();
    let issued = 0;
    let done = 0;
    let failed = 0;
    let rateAt = 0;
    let base: number | null = null; // a schedule's first timestamp in this phase
    const openAt = (it: Item): number => {
      if (o.mode.kind === 'concurrency') return -Infinity;
      if (o.mode.kind === 'rate') return (rateAt += (-Math.log(1 - rand()) * 1000) / o.mode.perSec);
      base ??= it.at;
      return it.at - base;
    };
    let peekAt = 0;
    const stopped = () => issued >= count || now() >= durationMs;

    // The next request when it is due, counted as issued and in flight in the same turn as the
    // checks (concurrent loops cannot overshoot the count, nor quit while a sibling's request
    // that may have a follow-up is about to go out); null when there is nothing more to send.
    const take = async (): Promise<Item | null> => {
      for (;;) {
        if (stopped()) return null;
        if (!peek && !exhausted) {
          peek = workload.next();
          if (peek) peekAt = openAt(peek);
          else exhausted = true;
        }
        const t = now();
        if (followUps.length && followUps[0]!.at <= t) {
          issued++;
          inFlight++;
          return followUps.shift()!;
        }
        if (peek && peekAt <= t) {
          const it = peek;
          peek = null;
          issued++;
          inFlight++;
          return it;
        }
        const due = Math.min(followUps[0]?.at ?? Infinity, peek ? peekAt : Infinity);
        if (due === Infinity && inFlight === 0) return null;
        // Sleep until the next is due, a request finishes (it may have a follow-up) or the
        // duration ends.
        await new Promise<void>((resolve) => {
          const until = Math.min(due, durationMs);
          const timer = Number.isFinite(until) ? setTimeout(resolve, Math.max(0, until - t)) : undefined;
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    };

    // `it` came from take(), which counted it in flight.
    const send = async (it: Item): Promise<void> => {
      const out = await target.send(prompt(it), it.outputLen);
      inFlight--;
      done++;
      if (out.error) failed++;
      record?.push({ outcome: out, promptLen: it.tokens.length });
      followUp(it, out);
      if (record) o.onProgress?.(done, failed);
      notify();
    };

    if (o.mode.kind === 'concurrency') {
      const loop = async () => {
        for (let it = await take(); it; it = await take()) await send(it);
        notify(); // another loop may be waiting on this one's follow-up
      };
      await Promise.all(Array.from({ length: o.mode.n }, loop));
    } else {
      const pending = new Set<Promise<void>>();
      for (let it = await take(); it; it = await take()) {
        const p = send(it).finally(() => pending.delete(p));
        pending.add(p);
      }
      await Promise.all(pending);
    }
  }

  if (o.warmup > 0) await phase(o.warmup, Infinity, null);
  const samples: Sample[] = [];
  const t0 = performance.now();
  await phase(o.requests, o.durationMs, samples);
  return { samples, durationS: (performance.now() - t0) / 1000 };
}
