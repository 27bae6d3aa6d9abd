import { describe, expect, it } from 'vitest';
import { lineChart } from '../../bench/suite/svg_chart.js';

describe('bench:report line chart', () => {
  it('draws one polyline per series through its points, in x order, with a legend entry', () => {
    const svg = lineChart({
      title: 'TTFT <vs> load', xLabel: 'streams', yLabel: 'ms', logX: true,
      series: [
        { name: 'kv', points: [[16, 20], [4, 10], [64, 40]] },
        { name: 'round-robin', points: [[4, 12], [16, NaN]] },
      ],
    });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('TTFT &lt;vs&gt; load');
    const lines = [...svg.matchAll(/<polyline [^>]*points="([^"]+)"/g)].map((m) => m[1]!.split(' ').map((p) => p.split(',').map(Number)));
    expect(lines).toHaveLength(2);
    // kv: three points, x increasing; higher y is drawn higher (smaller pixel y).
    expect(lines[0]).toHaveLength(3);
    expect(lines[0]![0]![0]).toBeLessThan(lines[0]![1]![0]!);
    expect(lines[0]![2]![1]).toBeLessThan(lines[0]![0]![1]!);
    // the NaN point is left out, not drawn at 0
    expect(lines[1]).toHaveLength(1);
    expect(svg).toContain('>round-robin</text>');
  });

  it('refuses a chart without a finite point', () => {
    expect(() => lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [{ name: 'a', points: [[1, NaN]] }] })).toThrow(/no finite points/);
  });
});
