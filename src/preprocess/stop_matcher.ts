// Stop strings over streamed text. The first stop string to complete in the stream ends
// it (the earliest end; on a tie the longest, which starts earliest); neither it nor
// anything after it is emitted. Text that could still become the start of a stop string
// is held back until the next chunk decides, so a stop string split across chunks is
// still caught and never half-emitted.

export interface StopResult {
  text: string; // safe to emit now
  stop: string | null; // the stop string that ended the stream, if any
}

export class StopMatcher {
  private pending = '';
  private stopped = false;

  constructor(private readonly stops: readonly string[]) {
    this.stops = stops.filter((s) => s.length > 0);
  }

  push(chunk: string): StopResult {
    if (this.stopped) return { text: '', stop: null };
    if (this.stops.length === 0) return { text: chunk, stop: null };
    const buf = this.pending + chunk;
    let bestEnd = Infinity;
    let best: string | null = null;
    for (const s of this.stops) {
      const at = buf.indexOf(s);
      if (at < 0) continue;
      const end = at + s.length;
      if (end < bestEnd || (end === bestEnd && best !== null && s.length > best.length)) {
        bestEnd = end;
        best = s;
      }
    }
    if (best !== null) {
      this.stopped = true;
      this.pending = '';
      return { text: buf.slice(0, bestEnd - best.length), stop: best };
    }
    const hold = this.partialMatchLength(buf);
    this.pending = buf.slice(buf.length - hold);
    return { text: buf.slice(0, buf.length - hold), stop: null };
  }

  // At the end of the stream: the held-back text was not a stop string after all.
  flush(): string {
    const rest = this.stopped ? '' : this.pending;
    this.pending = '';
    return rest;
  }

  // The longest suffix of buf that is a proper prefix of some stop string.
  private partialMatchLength(buf: string): number {
    let longest = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, buf.length); n > longest; n--) {
        if (buf.endsWith(s.slice(0, n))) {
          longest = n;
          break;
        }
      }
    }
    return longest;
  }
}
