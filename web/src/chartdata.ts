// Turning /series answers into what uPlot draws: x transforms, EMA
// smoothing, non-finite handling and aligning many runs on one x axis.
import type { Series } from "./api";

export type XMode = "step" | "time" | "rel";

export type RunSeries = {
  run: string;
  steps: Float64Array;
  ts: Float64Array;
  values: Float64Array; // NaN and ±Infinity kept as JS numbers
  total: number;
  downsampled: boolean;
};

export function fromWire(s: Series): RunSeries {
  return {
    run: s.run,
    steps: s.steps,
    ts: s.ts_ms ?? new Float64Array(0),
    values: s.values,
    total: s.total,
    downsampled: s.downsampled,
  };
}

/** Appends live points (step > the last step held). */
export function appendSeries(into: RunSeries, more: RunSeries): RunSeries {
  const last = into.steps.length ? into.steps[into.steps.length - 1] : -Infinity;
  let i = 0;
  while (i < more.steps.length && more.steps[i] <= last) i++;
  if (i >= more.steps.length) return into;
  return {
    ...into,
    steps: concat(into.steps, more.steps.subarray(i)),
    ts: concat(into.ts, more.ts.subarray(i)),
    values: concat(into.values, more.values.subarray(i)),
    total: Math.max(into.total, more.total, into.steps.length + more.steps.length - i),
  };
}

function concat(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export function xsOf(s: RunSeries, mode: XMode, t0: number | undefined): Float64Array {
  if (mode === "step") return s.steps;
  if (mode === "time") return s.ts.map((t) => t / 1000);
  const base = t0 ?? (s.ts.length ? s.ts[0] : 0);
  return s.ts.map((t) => (t - base) / 1000);
}

/** TensorBoard-style debiased exponential moving average; non-finite
 * points are skipped (and stay gaps). */
export function ema(values: ArrayLike<number>, weight: number): number[] {
  const out = new Array<number>(values.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (!Number.isFinite(v)) {
      out[i] = v;
      continue;
    }
    last = last * weight + (1 - weight) * v;
    n++;
    const debias = 1 - Math.pow(weight, n);
    out[i] = debias > 0 ? last / debias : v;
  }
  return out;
}

export type Prepared = {
  run: string;
  xs: Float64Array;
  raw: ArrayLike<number | null>;
  smooth: (number | null)[] | null;
  /** The smallest and largest of `raw` and `smooth`, when known without
   * another pass (null: look). */
  extent: [number, number] | null;
};

/** Values as uPlot wants them: NaN → null (a gap), ±∞ clamped to the finite
 * extremes of the panel, non-positive → null on a log axis. */
export function prepare(
  series: RunSeries[],
  opts: { x: XMode; smooth: number; logy: boolean; t0: (run: string) => number | undefined },
): Prepared[] {
  // Nearly every curve has nothing to fix: the panel's finite extremes
  // (what ±∞ is clamped to) are only looked for when one needs them.
  const clean = series.map((s) => drawable(s.values, opts.logy));
  let lo = Infinity;
  let hi = -Infinity;
  if (clean.some((ok) => ok === null)) {
    for (const s of series) {
      const vs = s.values;
      for (let i = 0; i < vs.length; i++) {
        const v = vs[i];
        if (Number.isFinite(v) && (!opts.logy || v > 0)) {
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
    }
  }
  const fix = (v: number): number | null => {
    if (Number.isNaN(v)) return null;
    if (v === Infinity) return hi === -Infinity ? null : hi;
    if (v === -Infinity) return lo === Infinity ? null : lo;
    if (opts.logy && v <= 0) return null;
    return v;
  };
  return series.map((s, k) => {
    const xs = xsOf(s, opts.x, opts.t0(s.run));
    const order = isSorted(xs) ? null : sortOrder(xs);
    const xsSorted = order ? Float64Array.from(order, (i) => xs[i]) : xs;
    const raw = order ? order.map((i) => fix(s.values[i])) : clean[k] ? s.values : Array.from(s.values, fix);
    const smooth = opts.smooth > 0 ? ema(Array.from(raw, (v) => v ?? NaN), opts.smooth).map((v) => (Number.isFinite(v) ? v : null)) : null;
    // A smoothed value is a weighted mean of raw ones: within their extent.
    return { run: s.run, xs: xsSorted, raw, smooth, extent: clean[k] };
  });
}

/** The smallest and largest value when every value is finite (and
 * positive on a log axis), so `fix` has nothing to do; null otherwise. An
 * empty curve's extent is [+∞, −∞]. */
function drawable(values: Float64Array, logy: boolean): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  // v - v is 0 for every finite v and NaN for NaN and ±∞: one subtraction
  // per point, where this first pass still runs in the interpreter.
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v - v !== 0 || (logy && v <= 0)) return null;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

function isSorted(xs: ArrayLike<number>): boolean {
  for (let i = 1; i < xs.length; i++) if (xs[i] < xs[i - 1]) return false;
  return true;
}

function sortOrder(xs: ArrayLike<number>): number[] {
  return Array.from(xs, (_, i) => i).sort((a, b) => xs[a] - xs[b] || a - b);
}

/** The most points a panel asks for, over all its runs: past it, a run
 * gets fewer buckets than the panel has pixels (never under a bucket per 4
 * px). 100 runs then travel as 150k points (2.4 MB) instead of 550k; M4's
 * four points per bucket keep every peak either way. */
export const PANEL_POINT_BUDGET = 150_000;

/** How many buckets a panel `width` px wide asks the server for, per run. */
export function bucketsFor(width: number, runs: number): number {
  const px = Math.max(100, Math.min(10_000, Math.round(width)));
  const share = Math.floor(PANEL_POINT_BUDGET / (4 * Math.max(1, runs)));
  return Math.max(Math.min(px, share), Math.ceil(px / 4), 100);
}

/** The x range the prepared runs span (each run's xs are sorted). */
export function xExtent(prepared: Prepared[]): [number, number] | null {
  let lo = Infinity;
  let hi = -Infinity;
  for (const p of prepared) {
    if (!p.xs.length) continue;
    if (p.xs[0] < lo) lo = p.xs[0];
    if (p.xs[p.xs.length - 1] > hi) hi = p.xs[p.xs.length - 1];
  }
  return lo <= hi ? [lo, hi] : null;
}

/** The smallest and largest value at an x between lo and hi (raw and
 * smoothed curves alike), or null when there is none; with `neighbours`,
 * the points just outside count too (a zoom between two points). */
export function yExtent(prepared: Prepared[], lo: number, hi: number, neighbours = false): [number, number] | null {
  let min = Infinity;
  let max = -Infinity;
  for (const p of prepared) {
    const [i0, i1] = visibleRange(p.xs, lo, hi, neighbours);
    if (p.extent && i0 === 0 && i1 === p.xs.length - 1) {
      // The whole curve is in view: its extent is known.
      if (p.extent[0] < min) min = p.extent[0];
      if (p.extent[1] > max) max = p.extent[1];
      continue;
    }
    for (const ys of p.smooth ? [p.raw, p.smooth] : [p.raw]) {
      for (let i = i0; i <= i1; i++) {
        const v = ys[i];
        if (v === null || v === undefined) continue;
        if (v < min) min = v;
        if (v > max) max = v;
      }
    }
  }
  return min <= max ? [min, max] : null;
}

/** The indices of a sorted `xs` between lo and hi, as [first, last]
 * (first > last when there are none); with `neighbours`, one more on each
 * side, whose line enters the panel. */
export function visibleRange(xs: ArrayLike<number>, lo: number, hi: number, neighbours = true): [number, number] {
  const extra = neighbours ? 1 : 0;
  return [Math.max(0, lowerBound(xs, lo) - extra), Math.min(xs.length - 1, lowerBound(xs, hi, true) - 1 + extra)];
}

/** The first index whose x is ≥ x (> x when `after`), in a sorted array. */
function lowerBound(xs: ArrayLike<number>, x: number, after = false): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (after ? xs[mid] <= x : xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the point nearest to x in a sorted array. */
export function nearest(xs: ArrayLike<number>, x: number): number {
  let lo = 0;
  let hi = xs.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && Math.abs(xs[lo - 1] - x) <= Math.abs(xs[lo] - x)) return lo - 1;
  return lo;
}

/** The step range that a zoomed x range covers, for refetching at full detail. */
export function stepRange(series: RunSeries[], mode: XMode, t0: (run: string) => number | undefined, lo: number, hi: number): [number, number] | null {
  if (mode === "step") return [Math.floor(lo), Math.ceil(hi)];
  let a = Infinity;
  let b = -Infinity;
  for (const s of series) {
    const xs = xsOf(s, mode, t0(s.run));
    for (let i = 0; i < xs.length; i++) {
      if (xs[i] >= lo && xs[i] <= hi) {
        // Include the neighbours so the curve reaches the edges.
        const l = s.steps[Math.max(0, i - 1)];
        if (l < a) a = l;
        break;
      }
    }
    for (let i = xs.length - 1; i >= 0; i--) {
      if (xs[i] >= lo && xs[i] <= hi) {
        const r = s.steps[Math.min(xs.length - 1, i + 1)];
        if (r > b) b = r;
        break;
      }
    }
  }
  return a <= b ? [a, b] : null;
}

/** "Nice" tick values for an SVG axis. */
export function ticks(lo: number, hi: number, n = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi) || lo === hi) return [lo];
  const span = hi - lo;
  const step0 = Math.pow(10, Math.floor(Math.log10(span / n)));
  const err = (n * step0) / span;
  const step = err <= 0.15 ? step0 * 10 : err <= 0.35 ? step0 * 5 : err <= 0.75 ? step0 * 2 : step0;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** Section of a metric key: its prefix before the first "/". */
export function sectionOf(key: string): string {
  const i = key.indexOf("/");
  return i > 0 ? key.slice(0, i) : "other";
}

export function sortSections(names: string[]): string[] {
  const rank = (s: string) => (s === "train" ? 0 : s === "val" || s === "valid" || s === "eval" ? 1 : s === "test" ? 2 : s === "other" ? 8 : s === "sys" ? 9 : 5);
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** The keys that every run holding them logged at most once: values and
 * bars, not curves. `count` is a run's number of points of a key, if known. */
export function loggedOnce<R>(keys: string[], runs: R[], count: (run: R, key: string) => number | undefined): Set<string> {
  const out = new Set<string>();
  for (const k of keys) {
    let seen = 0;
    let once = true;
    for (const r of runs) {
      const n = count(r, k);
      if (n === undefined) continue;
      seen++;
      if (n > 1) once = false;
    }
    if (seen > 0 && once) out.add(k);
  }
  return out;
}

/** Keys grouped by section (`train/…`, `val/…`), sections in display
 * order, keys sorted within: how the grid lays its panels out. */
export function keySections(keys: string[]): { name: string; keys: string[] }[] {
  const bySection = new Map<string, string[]>();
  for (const k of [...keys].sort()) {
    const s = sectionOf(k);
    bySection.set(s, [...(bySection.get(s) ?? []), k]);
  }
  return sortSections([...bySection.keys()]).map((name) => ({ name, keys: bySection.get(name) ?? [] }));
}

/** The keys drawn as curves, in the order the grid lays their panels out,
 * folded sections left out. */
export function curveKeysInOrder(keys: string[], once: Set<string>, folded: Set<string>): string[] {
  return keySections(keys)
    .filter((s) => !folded.has(s.name))
    .flatMap((s) => s.keys.filter((k) => !once.has(k)));
}
