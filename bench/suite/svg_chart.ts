// A line chart as a standalone SVG string, for bench:report: one line per series over shared x
// values, axes with ticks, a legend. Enough for a results folder a browser or GitHub renders;
// no plotting dependency.

export interface Series {
  name: string;
  points: Array<[x: number, y: number]>;
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  logX?: boolean;
  yFromZero?: boolean;
}

const W = 640;
const H = 400;
const M = { left: 70, right: 160, top: 40, bottom: 50 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

// 1, 2, 5 x 10^k steps giving about `n` ticks over [lo, hi].
function ticks(lo: number, hi: number, n = 5): number[] {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const label = (v: number): string => (Math.abs(v) >= 1000 ? `${+(v / 1000).toPrecision(3)}k` : `${+v.toPrecision(3)}`);

export function lineChart(c: Chart): string {
  const pts = c.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  if (pts.length === 0) throw new Error(`chart '${c.title}' has no finite points`);
  const fx = c.logX ? Math.log10 : (v: number) => v;
  const xs = pts.map(([x]) => fx(x));
  const ys = pts.map(([, y]) => y);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  let y0 = c.yFromZero === false ? Math.min(...ys) : Math.min(0, ...ys);
  let y1 = Math.max(...ys);
  if (y0 === y1) [y0, y1] = [y0 - 1, y1 + 1];
  y1 += (y1 - y0) * 0.05;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const px = (x: number) => M.left + ((fx(x) - x0) / (x1 - x0)) * pw;
  const py = (y: number) => M.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const xTicks = c.logX ? [...new Set(pts.map(([x]) => x))].sort((a, b) => a - b) : ticks(x0, x1);
  const parts: string[] = [
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(c.title)}</text>`,
    `<line x1="${M.left}" y1="${M.top + ph}" x2="${M.left + pw}" y2="${M.top + ph}" stroke="black"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${M.top + ph}" stroke="black"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 10}" text-anchor="middle" font-size="12">${esc(c.xLabel)}</text>`,
    `<text transform="translate(16 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(c.yLabel)}</text>`,
  ];
  for (const t of xTicks) {
    parts.push(`<line x1="${px(t)}" y1="${M.top + ph}" x2="${px(t)}" y2="${M.top + ph + 5}" stroke="black"/>`);
    parts.push(`<text x="${px(t)}" y="${M.top + ph + 18}" text-anchor="middle" font-size="11">${label(t)}</text>`);
  }
  for (const t of ticks(y0, y1)) {
    parts.push(`<line x1="${M.left}" y1="${py(t)}" x2="${M.left + pw}" y2="${py(t)}" stroke="#ddd"/>`);
    parts.push(`<text x="${M.left - 6}" y="${py(t) + 4}" text-anchor="end" font-size="11">${label(t)}</text>`);
  }
  c.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const ok = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).sort((a, b) => a[0] - b[0]);
    if (ok.length > 0) parts.push(`<polyline fill="none" stroke="${color}" stroke-width="2" points="${ok.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`);
    for (const [x, y] of ok) parts.push(`<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3" fill="${color}"/>`);
    const ly = M.top + 10 + i * 18;
    parts.push(`<line x1="${W - M.right + 15}" y1="${ly}" x2="${W - M.right + 35}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${W - M.right + 40}" y="${ly + 4}" font-size="12">${esc(s.name)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">\n${parts.join('\n')}\n</svg>\n`;
}
