// Small SVG charts (lines and bars), rasterised to PNG by sharp's librsvg: the training report
// needs four plots, not a plotting library.
import sharp from 'sharp';

export interface Series {
  name: string;
  points: [number, number][];
  color?: string;
}

const W = 720,
  H = 400,
  L = 70,
  R = 20,
  T = 40,
  B = 50;
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceTicks(lo: number, hi: number, n = 5): number[] {
  if (hi <= lo) hi = lo + 1;
  const step0 = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0)!;
  // From the tick at or below lo to the tick at or above hi, so no point falls outside the axis.
  const out: number[] = [];
  for (let v = Math.floor(lo / step + 1e-9) * step; v < hi + step * (1 - 1e-9); v += step) out.push(+v.toPrecision(12));
  return out;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e6 || (Math.abs(v) < 0.01 && v !== 0)
    ? v.toExponential(1)
    : String(+v.toPrecision(Math.abs(v) >= 1000 ? 7 : 3));
}

function frame(title: string, xLabel: string, yLabel: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans" font-size="13">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>
<text x="${L + (W - L - R) / 2}" y="${H - 10}" text-anchor="middle">${esc(xLabel)}</text>
<text x="16" y="${T + (H - T - B) / 2}" text-anchor="middle" transform="rotate(-90 16 ${T + (H - T - B) / 2})">${esc(yLabel)}</text>
${body}
</svg>`;
}

/** A line chart; the legend sits top right, or top left (`legend: 'left'`) for series that rise to the right. */
export function lineChartSvg(
  title: string,
  xLabel: string,
  yLabel: string,
  series: Series[],
  legend: 'left' | 'right' = 'right',
): string {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0)
    return frame(title, xLabel, yLabel, `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text>`);
  const xs = all.map((p) => p[0]),
    ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  const yt = niceTicks(Math.min(0, ...ys), Math.max(...ys));
  const [y0, y1] = [yt[0], yt[yt.length - 1]];
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => H - B - ((y - y0) / (y1 - y0 || 1)) * (H - T - B);
  let body = `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>`;
  for (const t of yt)
    body += `<line x1="${L}" x2="${W - R}" y1="${py(t)}" y2="${py(t)}" stroke="#eee"/><text x="${L - 6}" y="${py(t) + 4}" text-anchor="end">${fmt(t)}</text>`;
  for (const t of niceTicks(x0, x1).filter((t) => t >= x0 - 1e-9 && t <= x1 + 1e-9))
    body += `<text x="${px(t)}" y="${H - B + 18}" text-anchor="middle">${fmt(t)}</text>`;
  series.forEach((s, i) => {
    const c = s.color ?? PALETTE[i % PALETTE.length];
    const d = s.points.map((p, j) => `${j ? 'L' : 'M'}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join('');
    body += `<path d="${d}" fill="none" stroke="${c}" stroke-width="2"/>`;
    if (s.points.length <= 30)
      for (const p of s.points) body += `<circle cx="${px(p[0])}" cy="${py(p[1])}" r="3" fill="${c}"/>`;
    // ~7.5 px a character at 13 px DejaVu Sans
    const lx =
      legend === 'left' ? L + 10 : W - R - Math.max(150, 26 + 7.5 * Math.max(...series.map((t) => t.name.length)));
    body += `<rect x="${lx}" y="${T + 8 + i * 18}" width="12" height="12" fill="${c}"/><text x="${lx + 18}" y="${T + 18 + i * 18}">${esc(s.name)}</text>`;
  });
  return frame(title, xLabel, yLabel, body);
}

export function barChartSvg(title: string, labels: string[], values: number[], yLabel: string): string {
  const yt = niceTicks(0, Math.max(1e-9, ...values.filter(Number.isFinite)));
  const y1 = yt[yt.length - 1];
  const bw = (W - L - R) / Math.max(1, labels.length);
  const py = (y: number) => H - B - (y / y1) * (H - T - B);
  let body = `<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#888"/>`;
  for (const t of yt)
    body += `<line x1="${L}" x2="${W - R}" y1="${py(t)}" y2="${py(t)}" stroke="#eee"/><text x="${L - 6}" y="${py(t) + 4}" text-anchor="end">${fmt(t)}</text>`;
  labels.forEach((l, i) => {
    const v = values[i];
    const x = L + i * bw;
    if (Number.isFinite(v))
      body += `<rect x="${x + bw * 0.15}" y="${py(v)}" width="${bw * 0.7}" height="${H - B - py(v)}" fill="${PALETTE[0]}"/>`;
    else body += `<text x="${x + bw / 2}" y="${H - B - 4}" text-anchor="middle" fill="#c00">NaN</text>`;
    body += `<text x="${x + bw / 2}" y="${H - B + 14}" text-anchor="end" font-size="11" transform="rotate(-35 ${x + bw / 2} ${H - B + 14})">${esc(l)}</text>`;
  });
  return frame(title, '', yLabel, body);
}

export async function writeSvgPng(file: string, svg: string): Promise<void> {
  await sharp(Buffer.from(svg)).png().toFile(file);
}
