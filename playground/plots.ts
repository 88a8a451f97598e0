/**
 * The playground's plots as SVG strings: pure functions of numbers, the same in the page and in Node
 * (`npm run demo -- --plot DIR` writes them as files). Hand-written rather than a charting library: no
 * dependency and no network, a few kilobytes, and a string is easy to test (count the polyline points and
 * the heatmap cells).
 *
 * Every plot is an `<svg role="img">` with a `<title>` and an `aria-label`, so screen readers get a summary.
 */

export interface Series {
  name: string;
  values: number[];
  color: string;
  /** Draw dashed (e.g. the test curve beside the training one). */
  dashed?: boolean;
}

export interface LineChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** x of values[0] (default 1: epochs count from 1). */
  xStart?: number;
  yMin?: number;
  yMax?: number;
  width?: number;
  height?: number;
  /** A labelled vertical line at this x (e.g. the window boundary). */
  marker?: { x: number; label: string };
  /** Hide the legend (e.g. for many unnamed series). */
  legend?: boolean;
}

export interface HeatmapOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** rows[r][c]: r on the y axis (top = first row), c on the x axis. */
  rows: number[][];
  width?: number;
  height?: number;
  xStart?: number;
  yStart?: number;
}

const M = { left: 56, right: 16, top: 30, bottom: 42 };
const FONT = `font-family="system-ui, sans-serif" font-size="12"`;

export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" })[ch]!);
}

/** A short, readable number for axis ticks. */
export function fmt(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1000 || a < 0.01) return v.toExponential(0).replace("e+", "e");
  return Number(v.toPrecision(3)).toString();
}

/** About `n` round tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, n = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / n, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function frame(w: number, h: number, title: string, summary: string, body: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="${escapeXml(summary)}" ${FONT}>` +
    `<title>${escapeXml(title)}</title><rect width="${w}" height="${h}" fill="#fff"/>` +
    `<text x="${w / 2}" y="18" text-anchor="middle" font-weight="600" font-size="13">${escapeXml(title)}</text>${body}</svg>`;
}

function axisLabels(w: number, h: number, xLabel: string, yLabel: string): string {
  return `<text x="${(M.left + w - M.right) / 2}" y="${h - 6}" text-anchor="middle" fill="#333">${escapeXml(xLabel)}</text>` +
    `<text transform="translate(14 ${(M.top + h - M.bottom) / 2}) rotate(-90)" text-anchor="middle" fill="#333">${escapeXml(yLabel)}</text>`;
}

/**
 * Lines over x = xStart, xStart + 1, …: one `<polyline class="series">` per series with one point per value
 * (non-finite values are left out), axes with ticks, a legend.
 */
export function lineChart(o: LineChartOptions): string {
  const w = o.width ?? 420, h = o.height ?? 240, x0 = o.xStart ?? 1;
  const n = Math.max(1, ...o.series.map((s) => s.values.length));
  const finite = o.series.flatMap((s) => s.values.filter(Number.isFinite));
  let yMin = o.yMin ?? (finite.length ? Math.min(...finite) : 0), yMax = o.yMax ?? (finite.length ? Math.max(...finite) : 1);
  if (o.yMin === undefined && finite.length) yMin = Math.min(yMin, ...finite);
  if (!(yMax > yMin)) { const pad = Math.abs(yMin) * 0.1 || 0.5; yMin -= pad; yMax += pad; }
  const xMax = x0 + Math.max(1, n - 1);
  const px = (x: number): number => M.left + ((x - x0) / (xMax - x0)) * (w - M.left - M.right);
  const py = (y: number): number => h - M.bottom - ((y - yMin) / (yMax - yMin)) * (h - M.top - M.bottom);
  const r = (v: number): string => v.toFixed(1);
  let body = "";
  for (const t of ticks(yMin, yMax)) {
    body += `<line x1="${M.left}" x2="${w - M.right}" y1="${r(py(t))}" y2="${r(py(t))}" stroke="#e5e5e5"/>` +
      `<text x="${M.left - 6}" y="${r(py(t) + 4)}" text-anchor="end" fill="#555">${fmt(t)}</text>`;
  }
  const xt = ticks(x0, xMax, Math.min(8, Math.max(1, n - 1))).filter((t) => Number.isInteger(t));
  for (const t of xt) body += `<text x="${r(px(t))}" y="${h - M.bottom + 16}" text-anchor="middle" fill="#555">${t}</text>`;
  body += `<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${h - M.bottom}" stroke="#888"/>` +
    `<line x1="${M.left}" x2="${w - M.right}" y1="${h - M.bottom}" y2="${h - M.bottom}" stroke="#888"/>`;
  if (o.marker) {
    const mx = r(px(o.marker.x));
    body += `<line class="marker" x1="${mx}" x2="${mx}" y1="${M.top}" y2="${h - M.bottom}" stroke="#999" stroke-dasharray="3 3"/>` +
      `<text x="${mx}" y="${M.top + 10}" dx="4" fill="#666" font-size="11">${escapeXml(o.marker.label)}</text>`;
  }
  for (const s of o.series) {
    const pts = s.values.map((v, i) => (Number.isFinite(v) ? `${r(px(x0 + i))},${r(py(v))}` : "")).filter(Boolean).join(" ");
    body += `<polyline class="series" data-name="${escapeXml(s.name)}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ` stroke-dasharray="6 4"` : ""} points="${pts}"/>`;
    if (s.values.length === 1 && Number.isFinite(s.values[0]!)) body += `<circle cx="${r(px(x0))}" cy="${r(py(s.values[0]!))}" r="3" fill="${s.color}"/>`;
  }
  if (o.legend !== false) {
    o.series.forEach((s, i) => {
      const lx = w - M.right - 110, ly = M.top + 8 + i * 16;
      body += `<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${s.dashed ? ` stroke-dasharray="6 4"` : ""}/>` +
        `<text x="${lx + 24}" y="${ly + 4}" fill="#333">${escapeXml(s.name)}</text>`;
    });
  }
  body += axisLabels(w, h, o.xLabel, o.yLabel);
  const last = o.series.map((s) => `${s.name} ${s.values.length ? fmt(s.values.at(-1)!) : "none"}`).join(", ");
  return frame(w, h, o.title, `${o.title}: ${n} points per line; last values: ${last}`, body);
}

/** A perceptually ordered colour ramp (viridis, 5 stops), t in [0, 1]. */
export function ramp(t: number): string {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
  const c = stops[i]!.map((v, k) => Math.round(v + (stops[i + 1]![k]! - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/**
 * A heatmap of positive values on a log scale (they span orders of magnitude): one `<rect class="cell">` per
 * value, rows top to bottom, with a `<title>` each. Exact zeros (no gradient reached the step) are light grey,
 * so a TruncatedBPTT k2 cut shows as a grey band.
 */
export function heatmap(o: HeatmapOptions): string {
  const rows = o.rows, nr = Math.max(1, rows.length), nc = Math.max(1, ...rows.map((r) => r.length));
  const w = o.width ?? 420, h = o.height ?? 240, x0 = o.xStart ?? 0, y0 = o.yStart ?? 1;
  const legendW = 46, plotW = w - M.left - M.right - legendW, plotH = h - M.top - M.bottom;
  const cw = plotW / nc, ch = plotH / nr;
  const pos = rows.flat().filter((v) => v > 0 && Number.isFinite(v));
  const lo = pos.length ? Math.log10(Math.min(...pos)) : 0, hi = pos.length ? Math.log10(Math.max(...pos)) : 1;
  const scale = (v: number): number => (hi > lo ? (Math.log10(v) - lo) / (hi - lo) : 1);
  let body = "";
  rows.forEach((row, i) => {
    row.forEach((v, j) => {
      const fill = v > 0 && Number.isFinite(v) ? ramp(scale(v)) : "#e6e6e6";
      body += `<rect class="cell" x="${(M.left + j * cw).toFixed(1)}" y="${(M.top + i * ch).toFixed(1)}" width="${(cw + 0.3).toFixed(1)}" height="${(ch + 0.3).toFixed(1)}" fill="${fill}"><title>${escapeXml(`${o.yLabel} ${y0 + i}, ${o.xLabel} ${x0 + j}: ${fmt(v)}`)}</title></rect>`;
    });
  });
  const step = nc > 10 ? 5 : 1;
  for (let j = 0; j < nc; j += step) body += `<text x="${(M.left + (j + 0.5) * cw).toFixed(1)}" y="${h - M.bottom + 16}" text-anchor="middle" fill="#555">${x0 + j}</text>`;
  const rstep = Math.max(1, Math.ceil(nr / 8));
  for (let i = 0; i < nr; i += rstep) body += `<text x="${M.left - 6}" y="${(M.top + (i + 0.5) * ch + 4).toFixed(1)}" text-anchor="end" fill="#555">${y0 + i}</text>`;
  // Colour legend: the log10 range.
  const lx = w - M.right - legendW + 12;
  for (let k = 0; k < 20; k++) body += `<rect x="${lx}" y="${(M.top + (19 - k) * plotH / 20).toFixed(1)}" width="12" height="${(plotH / 20 + 0.3).toFixed(1)}" fill="${ramp(k / 19)}"/>`;
  body += `<text x="${lx + 6}" y="${M.top - 4}" text-anchor="middle" fill="#555" font-size="10">${pos.length ? fmt(10 ** hi) : ""}</text>` +
    `<text x="${lx + 6}" y="${h - M.bottom + 12}" text-anchor="middle" fill="#555" font-size="10">${pos.length ? fmt(10 ** lo) : ""}</text>`;
  body += axisLabels(w - legendW, h, o.xLabel, o.yLabel);
  return frame(w, h, o.title, `${o.title}: ${rows.length} rows of ${nc} cells, log colour scale from ${fmt(10 ** lo)} to ${fmt(10 ** hi)}; grey is zero`, body);
}

/** The playground's four plots of a run, by file stem. */
export function runPlots(reports: { loss: number; accuracy: number; testLoss: number; testAccuracy: number; gradNorms: number[]; cell: number[][] }[], window = 10): Record<"loss" | "accuracy" | "gradients" | "cell", string> {
  const cell = reports.at(-1)?.cell ?? [];
  const units = cell[0]?.length ?? 0;
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  return {
    loss: lineChart({
      title: "Loss per epoch", xLabel: "epoch", yLabel: "binary cross-entropy", yMin: 0,
      series: [
        { name: "train", values: reports.map((r) => r.loss), color: "#1f77b4" },
        { name: "test", values: reports.map((r) => r.testLoss), color: "#d62728", dashed: true },
      ],
    }),
    accuracy: lineChart({
      title: "Accuracy per epoch", xLabel: "epoch", yLabel: "accuracy", yMin: 0.4, yMax: 1,
      series: [
        { name: "train", values: reports.map((r) => r.accuracy), color: "#1f77b4" },
        { name: "test", values: reports.map((r) => r.testAccuracy), color: "#d62728", dashed: true },
      ],
    }),
    gradients: heatmap({ title: "‖dL/dh_t‖ on a probe batch", xLabel: "step t", yLabel: "epoch", rows: reports.map((r) => r.gradNorms) }),
    cell: lineChart({
      title: "Cell state c_t of a sequence starting with 1 (last epoch)", xLabel: "step t", yLabel: "c_t per unit", xStart: 0,
      series: Array.from({ length: units }, (_, u) => ({ name: `unit ${u}`, values: cell.map((c) => c[u]!), color: palette[u % palette.length]! })),
      marker: { x: window - 0.5, label: "window boundary" }, legend: false,
    }),
  };
}
