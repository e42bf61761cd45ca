// The small charts of the sweep and report pages, each a uPlot: a search's
// optimization history (every complete trial's value and the best so far),
// a slice per parameter (the value against the parameter, log or
// categorical axes), every trial's intermediate values, and a report
// group's sparkline against the baseline. Hovering a point names its
// trial; clicking opens the trial's run.
import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { fmtNum, fmtTicks, withAlpha } from "../format";
import type { FacetedData } from "../plotpaths";
import { asUplotData, curvePaths } from "../plotpaths";
import type { ParamAxis } from "../search";
import { jitter } from "../search";
import { cssVar, onTheme } from "../theme";

type Built = { opts: Omit<uPlot.Options, "width" | "height">; data: uPlot.AlignedData };

/** A point the cursor can land on, in data units, and what it stands for. */
export type HoverPoint = { x: number; y: number; key: number };

function font(weight = ""): string {
  return `${weight ? `${weight} ` : ""}11px ${cssVar("--font-sans") || "system-ui"}`;
}

/** Axes in the dashboard's style (Charts.tsx): gray ticks, faint grid. */
export function axisStyle(): Pick<uPlot.Axis, "stroke" | "grid" | "ticks" | "font" | "labelFont"> {
  const grid = cssVar("--grid");
  return { stroke: cssVar("--text-3"), grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1, size: 3 }, font: font(), labelFont: font("500") };
}

/** A y axis as wide as its labels. */
export function yAxisSize(u: uPlot, values: string[] | null): number {
  const ctx = u.ctx;
  ctx.font = font();
  const w = Math.max(0, ...(values ?? []).map((s) => ctx.measureText(s).width));
  return Math.ceil(w) + 14;
}

/** Integer tick steps (trial numbers, steps). */
const INT_INCRS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 1e4, 2e4, 2.5e4, 5e4, 1e5, 2e5, 5e5, 1e6, 2e6, 5e6, 1e7, 1e8, 1e9];

/** Ticks of a log axis: the decades (and 2 and 5 times them over a short
 * range, every few decades over a long one) instead of uPlot's 1…9 per
 * decade, whose grid lines crowd a small plot. */
export function logSplits(_u: uPlot, _axis: number, min: number, max: number): number[] {
  if (!(min > 0) || !(max > min)) return [min];
  const e0 = Math.floor(Math.log10(min));
  const e1 = Math.ceil(Math.log10(max));
  const decades = Math.log10(max / min);
  const mults = decades <= 1.2 ? [1, 2, 5] : decades <= 2.5 ? [1, 3] : [1];
  const every = decades > 7 ? Math.ceil(decades / 6) : 1;
  const out: number[] = [];
  for (let e = e0; e <= e1; e++) {
    if ((e - e0) % every) continue;
    for (const m of mults) {
      const v = Number((m * Math.pow(10, e)).toPrecision(12));
      if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) out.push(v);
    }
  }
  return out.length ? out : [min, max];
}

/** A y range with 6% padding (a log one by whole ratios); a flat series
 * gets a band around its value. */
export function padRange(lo: number, hi: number, log: boolean): [number, number] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return log ? [1, 10] : [0, 1];
  if (log) {
    if (lo <= 0) lo = hi > 0 ? hi / 10 : 1;
    const f = lo === hi ? 2 : Math.pow(hi / lo, 0.06);
    return [lo / f, hi * f];
  }
  if (lo === hi) return [lo - Math.abs(lo || 1) * 0.1, hi + Math.abs(hi || 1) * 0.1];
  const pad = (hi - lo) * 0.06;
  return [lo - pad, hi + pad];
}

/** A uPlot that follows its box's width and the theme, rebuilt when `deps`
 * change. `points` are what hovering finds (the nearest within 24 px);
 * `onHover` hears it, `onPick` a click on it. */
export function UPlot({
  height,
  build,
  deps,
  points,
  onHover,
  onPick,
  testid,
  class: cls,
  children,
  attrs,
}: {
  height: number;
  build: (width: number) => Built;
  deps: unknown[];
  points?: HoverPoint[];
  onHover?: (key: number | null) => void;
  onPick?: (key: number) => void;
  testid?: string;
  class?: string;
  children?: ComponentChildren;
  attrs?: Record<string, string | number>;
}) {
  const el = useRef<HTMLDivElement>(null);
  const [width, setWidth] = useState(0);
  const [theme, setTheme] = useState(0);
  const hoverRef = useRef({ points, onHover, onPick, key: null as number | null });
  hoverRef.current.points = points;
  hoverRef.current.onHover = onHover;
  hoverRef.current.onPick = onPick;
  useEffect(() => onTheme(() => setTheme((t) => t + 1)), []);
  useLayoutEffect(() => {
    const box = el.current;
    if (!box) return;
    setWidth(box.clientWidth);
    const ro = new ResizeObserver(() => setWidth(box.clientWidth));
    ro.observe(box);
    return () => ro.disconnect();
  }, []);
  useLayoutEffect(() => {
    const box = el.current;
    if (!box || width < 40) return;
    const { opts, data } = build(width);
    const ring = document.createElement("div");
    ring.className = "hover-ring";
    const setCursor = (u: uPlot) => {
      const h = hoverRef.current;
      if (!h.points?.length) return;
      const left = u.cursor.left ?? -1;
      const top = u.cursor.top ?? -1;
      let best: HoverPoint | null = null;
      let bestD = 24 * 24;
      if (left >= 0) {
        for (const p of h.points) {
          const px = u.valToPos(p.x, "x");
          const py = u.valToPos(p.y, "y");
          const d = (px - left) ** 2 + (py - top) ** 2;
          if (d < bestD) {
            bestD = d;
            best = p;
          }
        }
      }
      if (best) {
        ring.style.display = "block";
        ring.style.left = `${u.valToPos(best.x, "x")}px`;
        ring.style.top = `${u.valToPos(best.y, "y")}px`;
      } else ring.style.display = "none";
      const key = best ? best.key : null;
      u.over.style.cursor = key !== null && h.onPick ? "pointer" : "";
      if (key !== h.key) {
        h.key = key;
        h.onHover?.(key);
      }
    };
    const hooks = { ...(opts.hooks ?? {}), setCursor: [...(opts.hooks?.setCursor ?? []), setCursor] };
    const u = new uPlot({ ...opts, hooks, width, height }, data, box);
    u.over.append(ring);
    const click = () => {
      const h = hoverRef.current;
      if (h.key !== null) h.onPick?.(h.key);
    };
    const leave = () => {
      ring.style.display = "none";
      if (hoverRef.current.key !== null) {
        hoverRef.current.key = null;
        hoverRef.current.onHover?.(null);
      }
    };
    u.over.addEventListener("click", click);
    u.over.addEventListener("mouseleave", leave);
    (box as HTMLElement & { __uplot?: uPlot }).__uplot = u;
    return () => {
      u.destroy();
      delete (box as HTMLElement & { __uplot?: uPlot }).__uplot;
    };
  }, [width, height, theme, ...deps]);
  return (
    <div class={`plot ${cls ?? ""}`} ref={el} style={{ height: `${height}px` }} data-testid={testid} {...attrs}>
      {children}
    </div>
  );
}

// ---------------------------------------------------------------------------
// Optimization history

export type HistoryRow = { number: number; value: number; best: number };

/** Each complete trial's value by its number, and the best so far as a
 * step line. */
export function HistoryPlot({
  rows,
  metric,
  logy,
  onHover,
  onPick,
}: {
  rows: HistoryRow[];
  metric: string;
  logy: boolean;
  onHover: (n: number | null) => void;
  onPick: (n: number) => void;
}) {
  const log = logy && rows.every((r) => r.value > 0);
  const key = rows.map((r) => `${r.number}:${r.value}`).join(",");
  const points = rows.map((r) => ({ x: r.number, y: r.value, key: r.number }));
  return (
    <UPlot
      height={260}
      testid="history-plot"
      class="history-plot"
      deps={[key, log, metric]}
      points={points}
      onHover={onHover}
      onPick={onPick}
      attrs={{ "data-points": rows.length }}
      build={() => {
        const accent = cssVar("--accent");
        const dot = cssVar("--blue");
        const xs = rows.map((r) => r.number);
        const lo = Math.min(...rows.map((r) => r.value));
        const hi = Math.max(...rows.map((r) => r.value));
        const x0 = xs.length ? xs[0] : 0;
        const x1 = xs.length ? xs[xs.length - 1] : 1;
        const ax = axisStyle();
        return {
          data: [xs, rows.map((r) => r.value), rows.map((r) => r.best)],
          opts: {
            pxAlign: 0,
            legend: { show: false },
            padding: [8, 12, 0, 0],
            scales: {
              x: { time: false, range: () => (x0 === x1 ? [x0 - 1, x1 + 1] : [x0 - (x1 - x0) * 0.02, x1 + (x1 - x0) * 0.02]) },
              y: { distr: log ? 3 : 1, range: () => padRange(lo, hi, log) },
            },
            series: [
              {},
              { label: "value", stroke: dot, paths: () => null, points: { show: true, size: 7, width: 1, stroke: withAlpha(dot, 0.9), fill: withAlpha(dot, 0.35) } },
              { label: "best", stroke: accent, width: 2, paths: uPlot.paths.stepped?.({ align: 1 }), points: { show: false } },
            ],
            axes: [
              { ...ax, size: 24, space: 50, incrs: INT_INCRS, label: "Trial", labelSize: 16, labelGap: 0, values: (_u, vals, _a, _s, incr) => fmtTicks(vals, incr) },
              { ...ax, ticks: { show: false }, size: yAxisSize, space: 30, splits: log ? logSplits : undefined, label: metric, labelSize: 16, labelGap: 0, values: (_u, vals, _a, _s, incr) => fmtTicks(vals, log ? undefined : incr, !log) },
            ],
            cursor: { drag: { x: false, y: false, setScale: false }, points: { show: false }, x: false, y: false },
          },
        };
      }}
    />
  );
}

// ---------------------------------------------------------------------------
// Slices

export type SlicePoint = { trial: number; x: number | string; y: number };

/** The objective against one parameter: a dot per complete trial, colored
 * from pale (early trials) to deep (late ones), the best ringed. The y
 * range is shared by every slice, so they compare at a glance. */
export function SlicePlot({
  name,
  axis,
  points,
  yRange,
  logy,
  best,
  onHover,
  onPick,
}: {
  name: string;
  axis: ParamAxis;
  points: SlicePoint[];
  yRange: [number, number];
  logy: boolean;
  best: number | null;
  onHover: (n: number | null) => void;
  onPick: (n: number) => void;
}) {
  // Where each point sits on the x axis: its value, or its category's
  // index spread by a fixed jitter.
  const place = (p: SlicePoint): number | null => {
    if (axis.kind === "cat") {
      const i = axis.cats.indexOf(String(p.x));
      return i < 0 ? null : i + jitter(p.trial) * 0.5;
    }
    return typeof p.x === "number" && Number.isFinite(p.x) && (!axis.log || p.x > 0) ? p.x : null;
  };
  const placed = points.map((p) => ({ p, x: place(p) })).filter((q): q is { p: SlicePoint; x: number } => q.x !== null);
  placed.sort((a, b) => a.x - b.x);
  const maxTrial = Math.max(1, ...points.map((p) => p.trial));
  const key = placed.map((q) => `${q.p.trial}:${q.x}:${q.p.y}`).join(",");
  const hover = placed.map((q) => ({ x: q.x, y: q.p.y, key: q.p.trial }));
  return (
    <UPlot
      height={168}
      class="slice-plot"
      testid="slice-plot"
      deps={[key, axis.kind === "cat" ? axis.cats.join("\u0000") : `${axis.lo},${axis.hi},${axis.log}`, yRange.join(","), logy, best]}
      points={hover}
      onHover={onHover}
      onPick={onPick}
      attrs={{ "data-param": name, "data-points": placed.length, "data-scale": axis.kind === "cat" ? "categorical" : axis.log ? "log" : "linear" }}
      build={() => {
        const ax = axisStyle();
        const green = cssVar("--green");
        const ring = cssVar("--text");
        const xRange: [number, number] =
          axis.kind === "cat"
            ? [-0.6, axis.cats.length - 0.4]
            : axis.log
              ? (() => {
                  const f = axis.lo === axis.hi ? 2 : Math.pow(axis.hi / axis.lo, 0.05);
                  return [axis.lo / f, axis.hi * f] as [number, number];
                })()
              : axis.lo === axis.hi
                ? [axis.lo - 1, axis.hi + 1]
                : [axis.lo - (axis.hi - axis.lo) * 0.05, axis.hi + (axis.hi - axis.lo) * 0.05];
        const xAxis: uPlot.Axis =
          axis.kind === "cat"
            ? { ...ax, size: 30, splits: () => axis.cats.map((_, i) => i), values: () => axis.cats.map((c) => (c.length > 12 ? `${c.slice(0, 11)}…` : c)), grid: { show: false } }
            : { ...ax, size: 30, space: 44, splits: axis.log ? logSplits : undefined, values: (_u, vals, _a, _s, incr) => fmtTicks(vals, axis.log ? undefined : incr, !axis.log) };
        const draw = (u: uPlot) => {
          const ctx = u.ctx;
          const r = 3.6 * uPlot.pxRatio;
          ctx.save();
          ctx.beginPath();
          ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
          ctx.clip();
          for (const q of placed) {
            const x = u.valToPos(q.x, "x", true);
            const y = u.valToPos(q.p.y, "y", true);
            ctx.beginPath();
            ctx.arc(x, y, r, 0, 2 * Math.PI);
            ctx.fillStyle = trialColor(q.p.trial / maxTrial);
            ctx.fill();
          }
          for (const q of placed) {
            if (q.p.trial !== best) continue;
            const x = u.valToPos(q.x, "x", true);
            const y = u.valToPos(q.p.y, "y", true);
            ctx.beginPath();
            ctx.arc(x, y, r + 3 * uPlot.pxRatio, 0, 2 * Math.PI);
            ctx.lineWidth = 2 * uPlot.pxRatio;
            ctx.strokeStyle = green || ring;
            ctx.stroke();
          }
          ctx.restore();
        };
        return {
          data: [placed.map((q) => q.x), placed.map((q) => q.p.y)],
          opts: {
            pxAlign: 0,
            legend: { show: false },
            padding: [6, 10, 0, 0],
            scales: { x: { time: false, distr: axis.kind === "num" && axis.log ? 3 : 1, range: () => xRange }, y: { distr: logy ? 3 : 1, range: () => yRange } },
            series: [{}, { paths: () => null, points: { show: false } }],
            axes: [xAxis, { ...ax, ticks: { show: false }, size: yAxisSize, space: 26, splits: logy ? logSplits : undefined, values: (_u, vals, _a, _s, incr) => fmtTicks(vals, logy ? undefined : incr, !logy) }],
            cursor: { drag: { x: false, y: false, setScale: false }, points: { show: false }, x: false, y: false },
            hooks: { draw: [draw] },
          },
        };
      }}
    />
  );
}

/** A trial's dot color by how late it came (0 first … 1 last): the
 * accent, pale to deep. */
export function trialColor(t: number): string {
  const accent = cssVar("--accent") || "#5b5bd6";
  return withAlpha(accent, 0.28 + 0.67 * Math.max(0, Math.min(1, t)));
}

// ---------------------------------------------------------------------------
// Intermediate values

export type Curve = { trial: number; kind: "best" | "kept" | "pruned" | "other"; steps: number[]; values: (number | null)[] };

/** Each trial's reported values by step: kept trials in the accent, pruned
 * ones muted, the best on top in green. */
export function CurvesPlot({
  curves,
  metric,
  logy,
  onHover,
  onPick,
}: {
  curves: Curve[];
  metric: string;
  logy: boolean;
  onHover: (n: number | null) => void;
  onPick: (n: number) => void;
}) {
  // Drawn back to front: pruned, others, kept, the best.
  const order = { pruned: 0, other: 1, kept: 2, best: 3 };
  const drawn = [...curves].sort((a, b) => order[a.kind] - order[b.kind] || a.trial - b.trial);
  const allY = drawn.flatMap((c) => c.values.filter((v): v is number => v !== null && Number.isFinite(v) && (!logy || v > 0)));
  const allX = drawn.flatMap((c) => c.steps);
  const log = logy && allY.length > 0;
  const key = drawn.map((c) => `${c.trial}:${c.kind}:${c.steps.length}`).join(",");
  // Hover finds points; a dense plot offers every few only.
  const total = allX.length;
  const every = Math.max(1, Math.ceil(total / 20000));
  const points: HoverPoint[] = [];
  for (const c of drawn)
    for (let i = 0; i < c.steps.length; i += every) {
      const v = c.values[i];
      if (v !== null && Number.isFinite(v) && (!log || v > 0)) points.push({ x: c.steps[i], y: v, key: c.trial });
    }
  return (
    <UPlot
      height={300}
      class="curves-plot"
      testid="curves-plot"
      deps={[key, log, metric]}
      points={points}
      onHover={onHover}
      onPick={onPick}
      attrs={{ "data-curves": drawn.length, "data-pruned": drawn.filter((c) => c.kind === "pruned").length }}
      build={() => {
        const ax = axisStyle();
        const accent = cssVar("--accent");
        const muted = cssVar("--text-3");
        const green = cssVar("--green");
        const amber = cssVar("--amber");
        const style = (k: Curve["kind"]) =>
          k === "best" ? { stroke: green, width: 2.2 } : k === "kept" ? { stroke: withAlpha(accent, 0.55), width: 1.3 } : k === "pruned" ? { stroke: withAlpha(muted, 0.65), width: 1.1 } : { stroke: withAlpha(amber, 0.6), width: 1 };
        const data: FacetedData = [null];
        const series: uPlot.Series[] = [{}];
        const facets = [{ scale: "x", auto: false }, { scale: "y", auto: false }];
        for (const c of drawn) {
          data.push([c.steps, c.values.map((v) => (v === null || !Number.isFinite(v) || (log && v <= 0) ? null : v))]);
          series.push({ label: `#${c.trial}`, ...style(c.kind), facets, auto: false, paths: curvePaths, points: { show: false } } as uPlot.Series);
        }
        const x0 = allX.length ? Math.min(...allX) : 0;
        const x1 = allX.length ? Math.max(...allX) : 1;
        const lo = allY.length ? Math.min(...allY) : 0;
        const hi = allY.length ? Math.max(...allY) : 1;
        return {
          data: asUplotData(data),
          opts: {
            mode: 2,
            pxAlign: 0,
            legend: { show: false },
            padding: [8, 12, 0, 0],
            scales: { x: { time: false, range: () => (x0 === x1 ? [x0 - 1, x1 + 1] : [x0, x1]) }, y: { distr: log ? 3 : 1, range: () => padRange(lo, hi, log) } },
            series,
            axes: [
              { ...ax, size: 24, space: 60, incrs: INT_INCRS, label: "Step", labelSize: 16, labelGap: 0, values: (_u, vals, _a, _s, incr) => fmtTicks(vals, incr) },
              { ...ax, ticks: { show: false }, size: yAxisSize, space: 30, splits: log ? logSplits : undefined, label: metric, labelSize: 16, labelGap: 0, values: (_u, vals, _a, _s, incr) => fmtTicks(vals, log ? undefined : incr, !log) },
            ],
            cursor: { drag: { x: false, y: false, setScale: false }, points: { show: false }, x: false, y: false, dataIdx: () => null },
          },
        };
      }}
    />
  );
}

// ---------------------------------------------------------------------------
// Sparkline

/** A report group's best curve, small, with the baseline's value as a
 * dashed line. */
export function Sparkline({ values, baseline, tone }: { values: number[]; baseline: number | null; tone: "good" | "bad" | "plain" }) {
  const key = values.join(",");
  return (
    <UPlot
      height={54}
      class="sparkline"
      testid="sparkline"
      deps={[key, baseline, tone]}
      attrs={{ "data-points": values.length }}
      build={() => {
        const color = cssVar(tone === "good" ? "--green" : tone === "bad" ? "--red" : "--accent");
        const muted = cssVar("--text-3");
        const all = baseline !== null ? [...values, baseline] : values;
        const lo = Math.min(...all);
        const hi = Math.max(...all);
        const xs = values.map((_, i) => i);
        const draw = (u: uPlot) => {
          const ctx = u.ctx;
          const r = uPlot.pxRatio;
          ctx.save();
          if (baseline !== null) {
            const y = Math.round(u.valToPos(baseline, "y", true)) + 0.5;
            ctx.strokeStyle = muted;
            ctx.setLineDash([3 * r, 3 * r]);
            ctx.lineWidth = r;
            ctx.beginPath();
            ctx.moveTo(u.bbox.left, y);
            ctx.lineTo(u.bbox.left + u.bbox.width, y);
            ctx.stroke();
            ctx.setLineDash([]);
          }
          if (values.length) {
            const x = u.valToPos(xs[xs.length - 1], "x", true);
            const y = u.valToPos(values[values.length - 1], "y", true);
            ctx.fillStyle = color;
            ctx.beginPath();
            ctx.arc(x, y, 3 * r, 0, 2 * Math.PI);
            ctx.fill();
          }
          ctx.restore();
        };
        return {
          data: [xs, values],
          opts: {
            pxAlign: 0,
            legend: { show: false },
            padding: [5, 6, 5, 4],
            scales: { x: { time: false, range: () => (xs.length > 1 ? [0, xs.length - 1] : [-1, 1]) }, y: { range: () => padRange(lo, hi, false) } },
            series: [{}, { stroke: color, width: 1.6, fill: withAlpha(color, 0.08), points: { show: false } }],
            axes: [{ show: false }, { show: false }],
            cursor: { show: false },
            hooks: { draw: [draw] },
          },
        };
      }}
    />
  );
}

/** A hover readout's number: 4 significant digits. */
export function valueText(v: number | null | undefined): string {
  return v === null || v === undefined ? "—" : fmtNum(v);
}
