// Reading what the dashboard drew, to compare it with values the tests
// compute themselves from the API: a chart panel's uPlot instance (the
// element holds it, as `__uplot`), the colors of its canvas pixels, and PNG
// files decoded here (zlib and the PNG filters, no dependency).
import type { Page } from "@playwright/test";
import { inflateSync } from "node:zlib";

export type RGB = [number, number, number];

/** One uPlot series of a panel: its label (the run's name), its stroke, its
 * dash pattern (null when solid), and its points as (x, y) pairs, y null
 * where the curve has a gap. */
export type DrawnSeries = { label: string; stroke: string; dash: number[] | null; points: [number, number | null][] };

export type DrawnPanel = {
  /** The plotting area in canvas pixels. */
  bbox: { left: number; top: number; width: number; height: number };
  x: { min: number; max: number };
  y: { min: number; max: number };
  canvas: { width: number; height: number };
  series: DrawnSeries[];
};

/** The data and scales of a chart panel's uPlot instance. */
export async function drawn(page: Page, metric: string, scope = ""): Promise<DrawnPanel | null> {
  return page.evaluate(
    ([m, sc]) => {
      // Panels give uPlot each series' own points (its faceted mode):
      // data[k] is [xs, ys], slot 0 unused.
      type U = {
        data: [null, ...[ArrayLike<number>, ArrayLike<number | null>][]];
        series: { label?: string; stroke?: unknown; dash?: number[] }[];
        scales: Record<string, { min?: number; max?: number }>;
        bbox: { left: number; top: number; width: number; height: number };
        ctx: CanvasRenderingContext2D;
      };
      const el = document.querySelector(`${sc} .chart-panel[data-metric="${CSS.escape(m)}"] .plot`) as (HTMLElement & { __uplot?: U }) | null;
      const u = el?.__uplot;
      if (!u) return null;
      const series = u.series.slice(1).map((s, k) => {
        const [xs, ys] = u.data[k + 1] ?? [[], []];
        const points: [number, number | null][] = [];
        for (let i = 0; i < xs.length; i++) points.push([xs[i], ys[i]]);
        const stroke = typeof s.stroke === "function" ? (s.stroke as (u: U, i: number) => string)(u, k + 1) : String(s.stroke);
        return { label: String(s.label ?? ""), stroke, dash: s.dash && s.dash.length ? [...s.dash] : null, points };
      });
      return {
        bbox: { ...u.bbox },
        x: { min: u.scales.x.min ?? NaN, max: u.scales.x.max ?? NaN },
        y: { min: u.scales.y.min ?? NaN, max: u.scales.y.max ?? NaN },
        canvas: { width: u.ctx.canvas.width, height: u.ctx.canvas.height },
        series,
      };
    },
    [metric, scope] as const,
  );
}

/** Where a point must be drawn, in canvas pixels, by the mapping the tests
 * compute themselves: linear, or log10 on the y axis. */
export function pixelOf(p: DrawnPanel, x: number, y: number, logy: boolean): [number, number] {
  const tx = (x - p.x.min) / (p.x.max - p.x.min);
  const ty = logy ? (Math.log10(y) - Math.log10(p.y.min)) / (Math.log10(p.y.max) - Math.log10(p.y.min)) : (y - p.y.min) / (p.y.max - p.y.min);
  return [p.bbox.left + tx * p.bbox.width, p.bbox.top + (1 - ty) * p.bbox.height];
}

/** For each target (canvas pixels), whether the panel's canvas has a pixel
 * of `color` within `radius` pixels of it. */
export async function probe(page: Page, metric: string, targets: [number, number][], color: RGB, scope = "", radius = 2, tolerance = 60): Promise<boolean[]> {
  return page.evaluate(
    ({ m, sc, targets, color, radius, tolerance }) => {
      const el = document.querySelector(`${sc} .chart-panel[data-metric="${CSS.escape(m)}"] .plot`) as (HTMLElement & { __uplot?: { ctx: CanvasRenderingContext2D } }) | null;
      const ctx = el?.__uplot?.ctx;
      if (!ctx) return targets.map(() => false);
      const { width, height } = ctx.canvas;
      const img = ctx.getImageData(0, 0, width, height).data;
      return targets.map(([x, y]) => {
        for (let dy = -radius; dy <= radius; dy++) {
          for (let dx = -radius; dx <= radius; dx++) {
            const px = Math.round(x) + dx;
            const py = Math.round(y) + dy;
            if (px < 0 || py < 0 || px >= width || py >= height) continue;
            const i = (py * width + px) * 4;
            if (img[i + 3] < 200) continue;
            const d = Math.hypot(img[i] - color[0], img[i + 1] - color[1], img[i + 2] - color[2]);
            if (d <= tolerance) return true;
          }
        }
        return false;
      });
    },
    { m: metric, sc: scope, targets, color, radius, tolerance },
  );
}

/** "#rrggbb", "rgb(r, g, b)" or "rgba(r, g, b, a)" as [r, g, b]. */
export function rgb(css: string): RGB {
  const hex = /^#([0-9a-f]{6})$/i.exec(css.trim());
  if (hex) {
    const n = parseInt(hex[1], 16);
    return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
  }
  const m = /^rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)/i.exec(css.trim());
  if (!m) throw new Error(`not a color: ${css}`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

export const colorKey = (c: RGB) => c.join(",");

/** The alpha of a CSS color (1 unless it is rgba() or hsla()). */
export function alpha(css: string): number {
  const m = /^(?:rgba|hsla)\(.*,\s*([\d.]+)\s*\)$/i.exec(css.trim());
  return m ? Number(m[1]) : 1;
}

/** TensorBoard's debiased exponential moving average, as the README
 * promises it, written here independently of the dashboard's code;
 * non-finite values are skipped and stay gaps. */
export function ema(values: (number | null)[], weight: number): (number | null)[] {
  let last = 0;
  let n = 0;
  return values.map((v) => {
    if (v === null || !Number.isFinite(v)) return null;
    last = last * weight + (1 - weight) * v;
    n++;
    return last / (1 - Math.pow(weight, n));
  });
}

/** Whether two numbers agree to a relative precision. */
export function close(a: number, b: number, rel = 1e-9): boolean {
  return Math.abs(a - b) <= rel * Math.max(Math.abs(a), Math.abs(b), 1e-300);
}

// ---------------------------------------------------------------------------
// PNG

export type Image = { width: number; height: number; rgba: Uint8Array };

/** Decodes an 8-bit, non-interlaced PNG (gray, RGB, gray+alpha or RGBA, as
 * a canvas exports it) into RGBA pixels. */
export function decodePng(buf: Buffer): Image {
  const SIG = Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]);
  if (!buf.subarray(0, 8).equals(SIG)) throw new Error("not a PNG");
  let width = 0;
  let height = 0;
  let depth = 0;
  let type = 0;
  let interlace = 0;
  const idat: Buffer[] = [];
  for (let o = 8; o < buf.length; ) {
    const len = buf.readUInt32BE(o);
    const kind = buf.toString("latin1", o + 4, o + 8);
    const data = buf.subarray(o + 8, o + 8 + len);
    if (kind === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      depth = data[8];
      type = data[9];
      interlace = data[12];
    } else if (kind === "IDAT") idat.push(data);
    else if (kind === "IEND") break;
    o += 12 + len;
  }
  const channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[type];
  if (depth !== 8 || !channels || interlace !== 0) throw new Error(`unsupported PNG: depth ${depth}, color type ${type}, interlace ${interlace}`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const px = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const out = px.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? px.subarray((y - 1) * stride, y * stride) : new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? out[i - channels] : 0;
      const b = prev[i];
      const c = i >= channels ? prev[i - channels] : 0;
      let v = line[i];
      if (filter === 1) v += a;
      else if (filter === 2) v += b;
      else if (filter === 3) v += (a + b) >> 1;
      else if (filter === 4) {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      } else if (filter !== 0) throw new Error(`bad PNG filter ${filter}`);
      out[i] = v & 255;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const s = px.subarray(i * channels, (i + 1) * channels);
    const [r, g, b, a] = channels === 1 ? [s[0], s[0], s[0], 255] : channels === 2 ? [s[0], s[0], s[0], s[1]] : channels === 3 ? [s[0], s[1], s[2], 255] : [s[0], s[1], s[2], s[3]];
    rgba.set([r, g, b, a], i * 4);
  }
  return { width, height, rgba };
}

/** Pixels of an image within `tolerance` of a color. */
export function countColor(img: Image, color: RGB, tolerance = 40): number {
  let n = 0;
  for (let i = 0; i < img.rgba.length; i += 4) {
    if (img.rgba[i + 3] > 200 && Math.hypot(img.rgba[i] - color[0], img.rgba[i + 1] - color[1], img.rgba[i + 2] - color[2]) <= tolerance) n++;
  }
  return n;
}

export function distinctColors(img: Image): number {
  const s = new Set<number>();
  for (let i = 0; i < img.rgba.length; i += 4) s.add((img.rgba[i] << 16) | (img.rgba[i + 1] << 8) | img.rgba[i + 2]);
  return s.size;
}
