// The mocker's step loop when a hook it runs at the end of a step submits a request at once
// (the fleet simulator's prefill wait releases a held prompt when a request finishes): the new
// request must wait for the step being ended to schedule the next one, not schedule its own
// that the end of the step then overwrites, which lost that batch's requests (they stayed in
// prefill forever and the engine held them as admitted).

import { describe, expect, it } from 'vitest';
import { VirtualClock } from '../../bench/sim/clock.js';
import { RULES } from '../../bench/sim/simulate.js';
import { RankScheduler } from '../../src/mocker/scheduler.js';
import { EngineRequest } from '../../src/mocker/request.js';
import { polynomialTiming } from '../../src/mocker/timing.js';

describe('mocker scheduler: a request submitted from a hook at the end of a step', () => {
  it('is scheduled with the next step, and every request finishes', () => {
    const clock = new VirtualClock();
    const timing = polynomialTiming({ speedupRatio: 1, decodeSpeedupRatio: 1, kvBytesPerToken: 0, kvTransferBandwidth: 0 });
    let next = 0;
    const finished = new Set<string>();
    const backlog: EngineRequest[] = [];
    const make = (isl: number, out: number) =>
      new EngineRequest({ rid: String(next++), inputIds: Array.from({ length: isl }, (_, i) => (next * 7919 + i) % 30000), rules: RULES(out), stream: false, sink: { output() {} }, seed: 1, arrivalMs: clock.now() });
    const engine: RankScheduler = new RankScheduler(
      { rank: 0, pageSize: 16, maxTotalTokens: 65_536, maxRunningRequests: 64, chunkedPrefillSize: 256, maxPrefillTokens: 512, eosTokenId: 0, withText: false, mode: 'null', cacheEnabled: true, timing, clock },
      {
        events() {},
        ended: (req) => {
          finished.add(req.rid);
          // Two held prompts released at once, inside the step that ended this request.
          for (const r of backlog.splice(0, 2)) engine.submit(r);
        },
      },
    );
    for (let i = 0; i < 40; i++) backlog.push(make(100 + ((i * 37) % 300), 1 + (i % 5)));
    for (const r of backlog.splice(0, 4)) engine.submit(r);
    clock.run();
    expect(backlog).toHaveLength(0);
    expect(finished.size).toBe(40);
    expect(engine.numRequests).toBe(0);
    expect(engine.idle).toBe(true);
  });
});
