// Step durations: Dynamo's mocker polynomial (reference/dynamo.md §5), in milliseconds, divided
// by the speedup ratio.

export interface TimingModel {
  prefillMs(newTokens: number): number;
  decodeMs(activeKvTokens: number, totalKvTokens: number): number;
  transferMs(tokens: number): number;
}

export function polynomialTiming(opts: {
  speedupRatio: number;
  decodeSpeedupRatio: number;
  kvBytesPerToken: number;
  kvTransferBandwidth: number; // GB/s, 0 = instant
}): TimingModel {
  const { speedupRatio, decodeSpeedupRatio, kvBytesPerToken, kvTransferBandwidth } = opts;
  return {
    // T = uncached tokens computed in this step, summed over the batch.
    prefillMs: (t) => (4.209989e-7 * t * t + 1.518344e-2 * t + 16.50142) / speedupRatio,
    // p = fraction of the KV cache held by running requests; floored at 1 ms before the speedup.
    decodeMs: (active, total) => {
      const p = total > 0 ? active / total : 0;
      return Math.max(1, -25.74 * p * p + 54.01 * p + 5.74) / (speedupRatio * decodeSpeedupRatio);
    },
    transferMs: (tokens) =>
      kvTransferBandwidth > 0 ? ((tokens * kvBytesPerToken) / (kvTransferBandwidth * 1e9)) * 1000 / speedupRatio : 0,
  };
}
