// Metric charts: one uPlot panel per metric key, grouped in sections by
// prefix, one stable color per run, EMA smoothing with the raw curve faint
// behind, log y, drag-to-zoom that refetches the range from the server at
// full detail, hover values for every run, PNG/SVG export and live appends.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { MetricSummary, Run, Series } from "../api";
import { api, num } from "../api";
import type { Prepared, RunSeries, XMode } from "../chartdata";
import { appendSeries, bucketsFor, curveKeysInOrder, fromWire, keySections, loggedOnce, nearest, prepare, stepRange, ticks, xExtent, xsOf, yExtent } from "../chartdata";
import { CROWDED, fmtDuration, fmtNum, fmtTicks, linesOf, plural, withAlpha } from "../format";
import { useLive } from "../live";
import { setParams } from "../router";
import type { FacetedData } from "../plotpaths";
import { asUplotData, curvePaths, curvePoints, fewPoints, hoverIndex } from "../plotpaths";
import { cssVar, onTheme } from "../theme";
import { Empty, ErrorBox, useElementWidth } from "./common";

export type ChartRun = {
  id: string;
  name: string;
  created_ms?: number;
  color: string;
  /** A dash pattern when another run of the view has the same color. */
  dash?: number[] | null;
  /** A line width (CSS pixels) of its own, instead of the view's. */
  width?: number;
  /** The run's metric summaries: which keys were logged once, and their value. */
  metrics?: { [key: string]: MetricSummary };
};

/** The x axis's title for each mode. */
export const X_TITLES: Record<XMode, string> = { step: "Step", time: "Wall time", rel: "Relative time" };

export type ChartSettings = {
  x: XMode;
  smooth: number;
  logy: boolean;
  sync: boolean;
  zoom: [number, number] | null;
  zoomFor: (key: string) => [number, number] | null;
  hidden: Set<string>;
  folded: Set<string>;
};

function parseRange(v: string | null): [number, number] | null {
  if (!v) return null;
  const [a, b] = v.split(",").map(Number);
  return Number.isFinite(a) && Number.isFinite(b) && a < b ? [a, b] : null;
}

export function chartSettings(params: URLSearchParams): ChartSettings {
  const x = params.get("x");
  const sync = params.get("sync") !== "0";
  const zoom = parseRange(params.get("zoom"));
  return {
    x: x === "time" || x === "rel" ? x : "step",
    smooth: Math.min(0.99, Math.max(0, Number(params.get("smooth") ?? 0) || 0)),
    logy: params.get("logy") === "1",
    sync,
    zoom,
    zoomFor: (key) => (sync ? zoom : parseRange(params.get(`zoom.${key}`))),
    hidden: new Set((params.get("hide") ?? "").split(",").filter(Boolean)),
    folded: new Set((params.get("fold") ?? "").split(",").filter(Boolean)),
  };
}

/** Data each panel received, for tests and debugging. */
type ChartDebug = { key: string; runs: number; points: number; perRun: Record<string, number>; steps: Record<string, ArrayLike<number>>; lo: number | null; hi: number | null; fetches: number; requests: string[] };
declare global {
  interface Window {
    __labbookCharts?: Record<string, ChartDebug>;
  }
}

export function ChartControls({ settings, hasZoom }: { settings: ChartSettings; hasZoom: boolean }) {
  const [smooth, setSmooth] = useState(settings.smooth);
  useEffect(() => setSmooth(settings.smooth), [settings.smooth]);
  return (
    <div class="chart-controls" data-testid="chart-controls">
      <label class="ctl">
        <span>X axis</span>
        <select
          value={settings.x}
          onChange={(e) => setParams({ x: (e.target as HTMLSelectElement).value === "step" ? null : (e.target as HTMLSelectElement).value, zoom: null })}
        >
          <option value="step">Step</option>
          <option value="time">Wall time</option>
          <option value="rel">Relative time</option>
        </select>
      </label>
      <label class="ctl ctl-slider">
        <span>Smoothing</span>
        <input
          type="range"
          min="0"
          max="0.99"
          step="0.01"
          value={smooth}
          onInput={(e) => setSmooth(Number((e.target as HTMLInputElement).value))}
          onChange={(e) => setParams({ smooth: Number((e.target as HTMLInputElement).value) > 0 ? (e.target as HTMLInputElement).value : null })}
        />
        <span class="num ctl-val">{smooth.toFixed(2)}</span>
      </label>
      <label class="ctl check">
        <input type="checkbox" checked={settings.logy} onChange={(e) => setParams({ logy: (e.target as HTMLInputElement).checked ? "1" : null })} />
        <span>Log y</span>
      </label>
      <label class="ctl check" title="Share the cursor and the zoom range across panels">
        <input type="checkbox" checked={settings.sync} onChange={(e) => setParams({ sync: (e.target as HTMLInputElement).checked ? null : "0" })} />
        <span>Sync x</span>
      </label>
      {hasZoom && (
        <button class="btn btn-sm" onClick={() => clearZoom()}>
          Reset zoom
        </button>
      )}
      <span class="hint">Drag to zoom · double-click to reset</span>
    </div>
  );
}

function clearZoom() {
  const sp = new URLSearchParams(location.search);
  const patch: Record<string, null> = { zoom: null };
  for (const k of sp.keys()) if (k.startsWith("zoom.")) patch[k] = null;
  setParams(patch, { push: true });
}

/** How many runs a crowded legend (over CROWDED runs) lists before its
 * "more" button: about two rows at 1440 px. */
export const LEGEND_FIRST = 16;

export function Legend({ runs, hidden }: { runs: ChartRun[]; hidden: Set<string> }) {
  const [all, setAll] = useState(false);
  const toggle = (id: string) => {
    const h = new Set(hidden);
    if (h.has(id)) h.delete(id);
    else h.add(id);
    setParams({ hide: h.size ? [...h].join(",") : null });
  };
  // A crowded view lists its first runs and the ones hidden (so each can be
  // shown again); the rest wait for "more", and the charts for the page's
  // first paint do not wait for them.
  const listed = all || runs.length <= CROWDED ? runs : runs.filter((r, i) => i < LEGEND_FIRST || hidden.has(r.id));
  const more = runs.length - listed.length;
  return (
    <div class="legend" data-testid="legend">
      {listed.map((r) => (
        <button
          key={r.id}
          class={`legend-item ${hidden.has(r.id) ? "off" : ""}`}
          onClick={() => toggle(r.id)}
          title={hidden.has(r.id) ? "Show this run" : "Hide this run"}
        >
          <Swatch color={r.color} dash={r.dash} />
          {r.name}
        </button>
      ))}
      {more > 0 && (
        <button class="legend-item legend-more" data-testid="legend-more" onClick={() => setAll(true)} title="List every run of the view">
          {plural(more, "more run")}
        </button>
      )}
    </div>
  );
}

/** A run's color as a legend shows it: a square, striped when the run is
 * drawn dashed (its color is shared with another run of the view). */
export function Swatch({ color, dash }: { color: string; dash?: number[] | null }) {
  return <span class={`swatch ${dash ? "dashed" : ""}`} style={{ backgroundColor: color }} title={dash ? "dashed: another run here has this color" : undefined} />;
}

type PanelHandle = { lastStep: (run: string) => number | undefined; append: (s: RunSeries[]) => void };

/** The most runs one /series request names (the server's limit). */
const SERIES_CHUNK = 200;
/** The narrowest a chart panel may be, and the gap between panels. */
const MIN_PANEL = 420;
const MIN_PANEL_COMPACT = 360;
const GAP = 10;

/** Asks for the curves of the first `panels` panels the grid will show,
 * as the panels themselves will (same runs, key, buckets): called the
 * moment the run list arrives, so the curves travel while the page lays
 * the grid out instead of after. */
export function prefetchPanels(runs: { id: string; metrics: Run["metrics"] }[], settings: ChartSettings, panels = 6): void {
  const shown = runs.filter((r) => !settings.hidden.has(r.id)).map((r) => r.id);
  if (!shown.length || shown.length > SERIES_CHUNK) return;
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))];
  const once = loggedOnce(keys, runs, (r, k) => r.metrics[k]?.count);
  const buckets = bucketsFor(window.innerWidth, shown.length);
  for (const key of curveKeysInOrder(keys, once, settings.folded).slice(0, panels)) {
    api.prefetchSeries({ runs: shown, keys: [key], buckets, ts: settings.x !== "step" });
  }
}

/** Columns for a section of `n` panels in `width`: as many as fit, then
 * fewer when that balances the rows (4 panels in 3 columns make 2 × 2), so
 * no row is mostly empty; the last row's panels grow to fill it. */
export function sectionColumns(n: number, width: number, min: number): number {
  const fit = Math.max(1, Math.floor((width + GAP) / (min + GAP)));
  const rows = Math.ceil(n / fit);
  return Math.max(1, Math.ceil(n / Math.max(1, rows)));
}

/** Every metric of the given runs, sectioned; follows live runs. A metric
 * every run logged once is no curve: its values are listed (one run) or
 * drawn as bars across the runs. */
export function ChartGrid({
  project,
  runs,
  keys,
  settings,
  compact,
  keyFilter,
}: {
  project: string;
  runs: ChartRun[];
  keys: string[];
  settings: ChartSettings;
  compact?: boolean;
  /** Which metric keys this grid shows (live runs may log new ones). */
  keyFilter?: (key: string) => boolean;
}) {
  const handles = useRef(new Map<string, PanelHandle>());
  const [extraKeys, setExtraKeys] = useState<string[]>([]);
  // Point counts that live updates reported since `runs` came: a metric
  // logged once becomes a curve with its second point.
  const [liveCounts, setLiveCounts] = useState<Map<string, number>>(new Map());
  const runIds = useMemo(() => new Set(runs.map((r) => r.id)), [runs]);
  const byId = useMemo(() => new Map(runs.map((r) => [r.id, r])), [runs]);
  const runIdsKey = runs.map((r) => r.id).join(",");
  useEffect(() => {
    setExtraKeys([]);
    setLiveCounts(new Map());
  }, [runIdsKey]);
  const allKeys = useMemo(() => [...new Set([...keys, ...extraKeys])].sort(), [keys, extraKeys]);
  const inflight = useRef(new Set<string>());
  const [gridRef, gridW] = useElementWidth<HTMLDivElement>();

  useLive(project, (changes) => {
    const newKeys: string[] = [];
    const need = new Map<string, { after: number; keys: Set<string> }>();
    const counts: [string, number][] = [];
    for (const c of changes) {
      if (!runIds.has(c.id)) continue;
      for (const [k, m] of Object.entries(c.metrics)) {
        if (keyFilter && !keyFilter(k)) continue;
        // Only a key's first points matter here (logged once, or a curve).
        const known = liveCounts.get(`${c.id}\u0000${k}`) ?? byId.get(c.id)?.metrics?.[k]?.count;
        if ((known === undefined || known <= 1) && m.count !== known) counts.push([`${c.id}\u0000${k}`, m.count]);
        if (!allKeys.includes(k) && !newKeys.includes(k)) newKeys.push(k);
        const h = handles.current.get(k);
        if (!h) continue;
        const have = h.lastStep(c.id) ?? -1;
        if (m.last_step > have) {
          const e = need.get(c.id) ?? { after: have, keys: new Set<string>() };
          e.after = Math.min(e.after, have);
          e.keys.add(k);
          need.set(c.id, e);
        }
      }
    }
    if (counts.length) setLiveCounts((old) => new Map([...old, ...counts]));
    if (newKeys.length) setExtraKeys((ks) => [...ks, ...newKeys]);
    for (const [run, e] of need) {
      if (inflight.current.has(run)) continue;
      inflight.current.add(run);
      api
        .series({ runs: [run], keys: [...e.keys].slice(0, 50), after: e.after })
        .then((res) => {
          const byKey = new Map<string, RunSeries[]>();
          for (const s of res.series) byKey.set(s.key, [...(byKey.get(s.key) ?? []), fromWire(s)]);
          for (const [k, arr] of byKey) handles.current.get(k)?.append(arr);
        })
        .catch(() => undefined)
        .finally(() => inflight.current.delete(run));
    }
  });

  const visible = runs.filter((r) => !settings.hidden.has(r.id));
  // Keys every run that has them logged at most once (known from the runs'
  // summaries; a key the runs do not list yet is a curve).
  const single = useMemo(() => loggedOnce(allKeys, runs, (r, k) => liveCounts.get(`${r.id}\u0000${k}`) ?? r.metrics?.[k]?.count), [allKeys, runs, liveCounts]);
  const sections = useMemo(() => keySections(allKeys), [allKeys]);

  if (runs.length === 0) return <Empty title="No runs to chart">Select runs in the table, or log one with <code>labbook.init()</code>.</Empty>;
  if (allKeys.length === 0) return <Empty title="No metrics yet">These runs have not logged any metric. Log one with <code>run.log({"{"}"loss": 0.5{"}"})</code>.</Empty>;

  const toggleFold = (name: string) => {
    const f = new Set(settings.folded);
    if (f.has(name)) f.delete(name);
    else f.add(name);
    setParams({ fold: f.size ? [...f].join(",") : null });
  };

  // One run: values logged once are a list, not bars of one.
  const oneRun = runs.length === 1;
  const listed = oneRun ? allKeys.filter((k) => single.has(k)) : [];
  const minW = compact ? MIN_PANEL_COMPACT : MIN_PANEL;
  return (
    <div class={`chart-grid ${compact ? "compact" : ""}`} ref={gridRef}>
      {listed.length > 0 && <ValuesCard run={runs[0]} keys={listed} />}
      {sections.map((sec) => {
        const keysHere = sec.keys.filter((k) => !(oneRun && single.has(k)));
        if (!keysHere.length) return null;
        const folded = settings.folded.has(sec.name);
        // Before the grid is measured, the window's width stands in for it.
        const cols = sectionColumns(keysHere.length, gridW || Math.max(320, window.innerWidth - 40), minW);
        const basis = `calc((100% - ${(cols - 1) * GAP}px) / ${cols})`;
        return (
          <div class="chart-section" key={sec.name} data-section={sec.name}>
            <button class="section-head" onClick={() => toggleFold(sec.name)} aria-expanded={!folded}>
              <span class={`caret ${folded ? "" : "open"}`}>▸</span>
              {sec.name === "other" ? "Other" : `${sec.name}/`}
              <span class="muted"> {keysHere.length}</span>
            </button>
            {!folded && (
              <div class="panels" data-cols={cols}>
                {keysHere.map((k) =>
                  single.has(k) ? (
                    <BarPanel key={k} metric={k} runs={visible} basis={basis} />
                  ) : (
                    <ChartPanel
                      key={k}
                      metric={k}
                      runs={visible}
                      settings={settings}
                      basis={basis}
                      register={(h) => {
                        if (h) handles.current.set(k, h);
                        else handles.current.delete(k);
                      }}
                    />
                  ),
                )}
              </div>
            )}
          </div>
        );
      })}
    </div>
  );
}

/** One value of a metric logged once: the run's summary of it. */
function onceValue(r: ChartRun, key: string): { v: number; step: number } | null {
  const m = r.metrics?.[key];
  if (!m || m.count < 1) return null;
  return { v: num(m.last), step: m.last_step };
}

/** The metrics a lone run logged once, as values. */
function ValuesCard({ run, keys }: { run: ChartRun; keys: string[] }) {
  return (
    <div class="panel values-card" data-testid="values-card">
      <div class="panel-head">
        <span class="panel-title-plain">Logged once</span>
        <span class="muted small">{plural(keys.length, "metric")} with a single value</span>
      </div>
      <div class="values-grid">
        {keys.map((k) => {
          const o = onceValue(run, k);
          return (
            <div class="value-tile" key={k} data-metric={k} data-value={o ? String(o.v) : ""}>
              <div class="value-key mono" title={k}>
                {k}
              </div>
              <div class={`value-num num ${o && !Number.isFinite(o.v) ? "nonfinite" : ""}`}>{o ? fmtNum(o.v) : "—"}</div>
              {o && <div class="value-step muted">step {fmtNum(o.step)}</div>}
            </div>
          );
        })}
      </div>
    </div>
  );
}

/** A metric each run logged once, as one bar per run in the run's color,
 * from zero (or the most negative value) to the value, labelled. */
export function BarPanel({ metric, runs, basis }: { metric: string; runs: ChartRun[]; basis?: string }) {
  const rows = runs.map((r) => ({ r, o: onceValue(r, metric) })).filter((x): x is { r: ChartRun; o: { v: number; step: number } } => x.o !== null);
  const finite = rows.map((x) => x.o.v).filter(Number.isFinite);
  const lo = Math.min(0, ...finite);
  const hi = Math.max(0, ...finite);
  const span = hi - lo || 1;
  // Where a value sits along the track, 0..1; ±∞ at the ends.
  const at = (v: number) => (v === Infinity ? 1 : v === -Infinity ? 0 : (v - lo) / span);
  const zero = at(0);
  return (
    <div class="panel chart-panel bar-panel" style={basis ? { flexBasis: basis } : undefined} data-metric={metric} data-testid="bar-panel" data-points={rows.length}>
      <div class="panel-head">
        <span class="panel-title" title={metric}>
          {metric}
        </span>
        <span class="panel-meta">
          <span class="badge subtle" title="Every run logged this metric once: one value per run">logged once</span>
        </span>
      </div>
      <div class="bars" style={{ height: `${HEIGHT}px` }}>
        {rows.length === 0 && <div class="plot-empty">No data for these runs</div>}
        {rows.map(({ r, o }) => {
          const ok = !Number.isNaN(o.v);
          const a = Math.min(zero, at(o.v));
          const b = Math.max(zero, at(o.v));
          return (
            <div class="bar-row" key={r.id} data-run={r.id} data-value={String(o.v)} title={`${r.name}: ${fmtNum(o.v)} (step ${fmtNum(o.step)})`}>
              <span class="bar-name">{r.name}</span>
              <span class="bar-track">
                {ok && <span class={`bar ${r.dash ? "dashed" : ""}`} style={{ left: `${a * 100}%`, width: `${(b - a) * 100}%`, backgroundColor: r.color }} />}
              </span>
              <span class={`bar-val num ${Number.isFinite(o.v) ? "" : "nonfinite"}`}>{fmtNum(o.v)}</span>
            </div>
          );
        })}
      </div>
    </div>
  );
}

const HEIGHT = 210;

/** A step a panel marks with a vertical line in the theme's red. */
export type StepMark = { step: number; label: string };

export function ChartPanel({
  metric,
  runs,
  settings,
  register,
  height = HEIGHT,
  basis,
  marks,
}: {
  metric: string;
  runs: ChartRun[];
  settings: ChartSettings;
  register?: (h: PanelHandle | null) => void;
  height?: number;
  /** The panel's share of its row (ChartGrid's columns). */
  basis?: string;
  /** Steps marked by a vertical line and a label (a replay's divergence);
   * drawn on a step axis only. */
  marks?: StepMark[];
}) {
  const root = useRef<HTMLDivElement>(null);
  const plotEl = useRef<HTMLDivElement>(null);
  const tipEl = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [width, setWidth] = useState(0);
  const [visible, setVisible] = useState(false);
  const [base, setBase] = useState<Map<string, RunSeries> | null>(null);
  const [baseGen, setBaseGen] = useState(0); // counts full fetches, not live appends
  const [zoomed, setZoomed] = useState<{ range: [number, number]; data: Map<string, RunSeries> } | null>(null);
  const [error, setError] = useState<Error | null>(null);
  const [loading, setLoading] = useState(false);
  const [themeTick, setThemeTick] = useState(0);
  const debug = useRef<ChartDebug>({ key: metric, runs: 0, points: 0, perRun: {}, steps: {}, lo: null, hi: null, fetches: 0, requests: [] });
  const zoom = settings.zoomFor(metric);
  const runKey = runs.map((r) => r.id).join(",");
  const t0 = useMemo(() => {
    const m = new Map(runs.map((r) => [r.id, r.created_ms]));
    return (id: string) => m.get(id);
  }, [runKey]);
  // Buckets for the window's width, which no panel exceeds: known before
  // any layout, so the run list's arrival can already ask for the curves
  // (prefetchPanels). A refetch only if the panel outgrows it by a lot.
  const [fetchW, setFetchW] = useState(() => window.innerWidth);
  useEffect(() => {
    if (width > fetchW * 1.25) setFetchW(width);
  }, [width]);
  const measure = (el: HTMLElement) => setWidth(plotEl.current?.clientWidth ?? el.clientWidth);
  const buckets = bucketsFor(fetchW, runs.length);

  useEffect(() => onTheme(() => setThemeTick((t) => t + 1)), []);

  // Width, and loading only once the panel is near the viewport.
  useLayoutEffect(() => {
    const el = root.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setWidth(plotEl.current?.clientWidth ?? el.clientWidth));
    ro.observe(el);
    measure(el);
    if (el.getBoundingClientRect().top < window.innerHeight + 600) setVisible(true);
    const io = new IntersectionObserver((es) => es.some((e) => e.isIntersecting) && setVisible(true), { rootMargin: "600px" });
    io.observe(el);
    return () => {
      ro.disconnect();
      io.disconnect();
    };
  }, []);

  const fetchSeries = (lo?: number, hi?: number, signal?: AbortSignal) => {
    const ids = runs.map((r) => r.id);
    const chunks: string[][] = [];
    for (let i = 0; i < ids.length; i += SERIES_CHUNK) chunks.push(ids.slice(i, i + SERIES_CHUNK));
    debug.current.fetches++;
    const q = `buckets=${buckets}${lo !== undefined ? `&lo=${lo}&hi=${hi}` : ""}`;
    debug.current.requests.push(q);
    return Promise.all(chunks.map((c) => api.series({ runs: c, keys: [metric], buckets, lo, hi, ts: settings.x !== "step" }, signal))).then((rs) => {
      const m = new Map<string, RunSeries>();
      for (const r of rs) for (const s of r.series as Series[]) m.set(s.run, fromWire(s));
      return m;
    });
  };

  // The whole curve, asked for before the first paint.
  useLayoutEffect(() => {
    if (!visible || runs.length === 0) return;
    const ctl = new AbortController();
    setLoading(true);
    fetchSeries(undefined, undefined, ctl.signal).then(
      (m) => {
        if (ctl.signal.aborted) return;
        setBase(m);
        setBaseGen((g) => g + 1);
        setError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (ctl.signal.aborted) return;
        setError(e instanceof Error ? e : new Error(String(e)));
        setLoading(false);
      },
    );
    return () => ctl.abort();
  }, [visible, runKey, metric, buckets, settings.x === "step"]);

  // The zoomed range, refetched so the server re-downsamples it.
  const zoomKey = zoom ? zoom.join(",") : "";
  useEffect(() => {
    if (!zoom || !base) {
      setZoomed(null);
      return;
    }
    const range = stepRange([...base.values()], settings.x, t0, zoom[0], zoom[1]);
    if (!range) {
      setZoomed({ range: zoom, data: new Map() });
      return;
    }
    const ctl = new AbortController();
    fetchSeries(range[0], range[1], ctl.signal).then(
      (m) => !ctl.signal.aborted && setZoomed({ range: zoom, data: m }),
      () => undefined,
    );
    return () => ctl.abort();
    // Not on every live append: the zoomed range is refetched only when it changes.
  }, [zoomKey, baseGen, settings.x, buckets]);

  // Live appends.
  const dataRef = useRef({ base, zoomed });
  dataRef.current = { base, zoomed };
  useEffect(() => {
    register?.({
      lastStep: (run) => {
        const s = dataRef.current.base?.get(run);
        if (!s) return runs.some((r) => r.id === run) ? -1 : undefined;
        return s.steps.length ? s.steps[s.steps.length - 1] : -1;
      },
      append: (more) => {
        setBase((b) => {
          const m = new Map(b ?? []);
          for (const s of more) {
            const cur = m.get(s.run);
            m.set(s.run, cur ? appendSeries(cur, s) : s);
          }
          return m;
        });
        setZoomed((z) => {
          if (!z) return z;
          const m = new Map(z.data);
          for (const s of more) {
            const cur = m.get(s.run);
            if (cur) m.set(s.run, appendSeries(cur, s));
          }
          return { ...z, data: m };
        });
      },
    });
    return () => register?.(null);
  }, [runKey]);

  const shown = zoomed?.data ?? base;
  const prepared = useMemo<Prepared[]>(() => {
    if (!shown) return [];
    const order = runs.map((r) => shown.get(r.id)).filter((s): s is RunSeries => !!s);
    return prepare(order, { x: settings.x, smooth: settings.smooth, logy: settings.logy, t0 });
  }, [shown, runKey, settings.x, settings.smooth, settings.logy]);

  // Draw.
  const names = useMemo(() => new Map(runs.map((r) => [r.id, r.name])), [runKey]);
  const colors = useMemo(() => new Map(runs.map((r) => [r.id, r.color])), [runKey, runs.map((r) => r.color).join()]);
  const dashes = useMemo(() => new Map(runs.map((r) => [r.id, r.dash ?? null])), [runKey, runs.map((r) => String(r.dash ?? "")).join()]);
  const widths = useMemo(() => new Map(runs.filter((r) => r.width !== undefined).map((r) => [r.id, r.width as number])), [runKey, runs.map((r) => String(r.width ?? "")).join()]);
  const colorOf = (id: string) => colors.get(id) ?? "#888";
  const marksKey = (marks ?? []).map((m) => `${m.step}:${m.label}`).join("|");
  // Drawn before the browser paints the frame that brought the data, not
  // one frame later.
  useLayoutEffect(() => {
    const el = plotEl.current;
    if (!el || !width || prepared.length === 0) {
      plot.current?.destroy();
      plot.current = null;
      return;
    }
    // Each run drawn from its own points (uPlot's faceted mode): no shared
    // x axis to align 100 runs on.
    const data: FacetedData = [null];
    const series: uPlot.Series[] = [{}];
    const lines = linesOf(prepared.length);
    const facets = [{ scale: "x", auto: false }, { scale: "y", auto: false }];
    const dots = (fill: string) => ({ show: fewPoints, paths: curvePoints, size: 4, fill });
    for (const p of prepared) {
      const c = colorOf(p.run);
      const dash = dashes.get(p.run) ?? undefined;
      const line = { label: names.get(p.run), dash, facets, auto: false, paths: curvePaths };
      const own = widths.get(p.run);
      if (p.smooth) {
        data.push([p.xs, p.raw], [p.xs, p.smooth]);
        series.push({ ...line, stroke: withAlpha(c, 0.22), width: lines.faint, points: { show: false } });
        series.push({ ...line, stroke: c, width: own ?? lines.smooth, points: { show: false } });
      } else {
        data.push([p.xs, p.raw]);
        series.push({ ...line, stroke: c, width: own ?? lines.raw, points: dots(c) });
      }
    }
    // The scales' ranges, found here from the runs' points (uPlot's own
    // search would scan every series again).
    const xFull = xExtent(prepared) ?? [0, 1];
    const xRange: [number, number] = zoom ? [zoom[0], zoom[1]] : [xFull[0], xFull[1] === xFull[0] ? xFull[0] + 1 : xFull[1]];
    const yData = yExtent(prepared, xRange[0], xRange[1]) ?? yExtent(prepared, xRange[0], xRange[1], true);
    const axisStroke = cssVar("--text-3");
    const grid = cssVar("--grid");
    const font = `11px ${cssVar("--font-sans") || "system-ui"}`;
    const labelFont = `500 11px ${cssVar("--font-sans") || "system-ui"}`;
    const xFmt = (vals: number[], incr: number) => (settings.x === "rel" ? vals.map((v) => fmtDuration(v * 1000)) : fmtTicks(vals, incr));
    const yAxisSize = (u: uPlot, values: string[] | null) => {
      const ctx = u.ctx;
      ctx.font = font;
      const w = Math.max(0, ...(values ?? []).map((s) => ctx.measureText(s).width));
      return Math.ceil(w) + 16;
    };
    const opts: uPlot.Options = {
      width,
      height,
      pxAlign: 0,
      legend: { show: false },
      padding: [6, 10, 0, 0],
      series,
      mode: 2,
      scales: {
        x: { time: settings.x === "time", range: () => xRange },
        y: {
          distr: settings.logy ? 3 : 1,
          range: () => {
            if (!yData) return settings.logy ? [1, 10] : [0, 1];
            const [min, max] = yData;
            if (settings.logy) return uPlot.rangeLog(min, max, 10, false);
            if (min === max) return [min - Math.abs(min || 1) * 0.1, max + Math.abs(max || 1) * 0.1];
            const pad = (max - min) * 0.05;
            return [min - pad, max + pad];
          },
        },
      },
      axes: [
        {
          stroke: axisStroke,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid, width: 1, size: 4 },
          font,
          size: 24,
          space: 60,
          label: X_TITLES[settings.x],
          labelFont,
          labelSize: 16,
          labelGap: 0,
          values: settings.x === "time" ? undefined : (_u, vals, _axis, _space, incr) => xFmt(vals, incr),
        },
        {
          stroke: axisStroke,
          grid: { stroke: grid, width: 1 },
          ticks: { show: false },
          font,
          size: yAxisSize,
          space: 28,
          label: metric,
          labelFont,
          labelSize: 16,
          labelGap: 0,
          values: (_u, vals, _axis, _space, incr) => fmtTicks(vals, settings.logy ? undefined : incr, !settings.logy),
        },
      ],
      cursor: {
        drag: { x: true, y: false, setScale: false },
        sync: settings.sync ? { key: "labbook-x", setSeries: false } : undefined,
        // A dot on each curve at the cursor, unless the view is crowded:
        // 100 dots in a column say nothing the tooltip does not.
        points: { size: 5, ...(prepared.length > CROWDED ? { show: false } : {}) },
        dataIdx: hoverIndex,
        bind: {
          dblclick: () => () => {
            if (settings.sync) setParams({ zoom: null }, { push: true });
            else setParams({ [`zoom.${metric}`]: null }, { push: true });
            return null;
          },
        },
      },
      hooks: {
        setSelect: [
          (u) => {
            const w = u.select.width;
            if (w < 4) return;
            const lo = u.posToVal(u.select.left, "x");
            const hi = u.posToVal(u.select.left + w, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            const v = `${round(lo)},${round(hi)}`;
            if (settings.sync) setParams({ zoom: v }, { push: true });
            else setParams({ [`zoom.${metric}`]: v }, { push: true });
          },
        ],
        setCursor: [(u) => showTip(u)],
        draw: [(u) => drawMarks(u, settings.x === "step" ? (marks ?? []) : [])],
      },
    };
    const showTip = (u: uPlot) => {
      const tip = tipEl.current;
      if (!tip) return;
      const left = u.cursor.left ?? -1;
      if (left < 0) {
        tip.style.display = "none";
        return;
      }
      const x = u.posToVal(left, "x");
      const rows: { id: string; v: number; raw: number | null }[] = [];
      for (const p of prepared) {
        const i = nearest(p.xs, x);
        if (i < 0) continue;
        const ys = p.smooth ?? p.raw;
        const v = ys[i];
        if (v === null || v === undefined) continue;
        rows.push({ id: p.run, v, raw: p.smooth ? p.raw[i] : null });
      }
      rows.sort((a, b) => b.v - a.v);
      const head = settings.x === "time" ? new Date(x * 1000).toLocaleString() : settings.x === "rel" ? fmtDuration(x * 1000) : `step ${fmtNum(Math.round(x))}`;
      const max = 12;
      // Built as nodes, not an HTML string: a parsed style="…" attribute is
      // inline style, which the dashboard's CSP (style-src 'self') refuses;
      // setting el.style is not.
      const children: HTMLElement[] = [elem("div", "tip-head", head)];
      for (const r of rows.slice(0, max)) {
        const swatch = elem("span", "swatch");
        swatch.style.background = colorOf(r.id);
        const num = elem("span", "num", fmtNum(r.v));
        if (r.raw !== null) num.append(" ", elem("span", "muted", `(${fmtNum(r.raw)})`));
        const row = elem("div", "tip-row");
        row.append(swatch, elem("span", "tip-name", names.get(r.id) ?? r.id), num);
        children.push(row);
      }
      if (rows.length > max) children.push(elem("div", "tip-more", `+${rows.length - max} more`));
      tip.replaceChildren(...children);
      tip.style.display = rows.length ? "block" : "none";
      const bbox = u.over.getBoundingClientRect();
      const pbox = root.current?.getBoundingClientRect();
      const offX = pbox ? bbox.left - pbox.left : 0;
      const offY = pbox ? bbox.top - pbox.top : 0;
      const tw = tip.offsetWidth;
      const px = offX + left + 14;
      tip.style.left = `${px + tw > (pbox?.width ?? 0) ? offX + left - tw - 14 : px}px`;
      tip.style.top = `${offY + 4}px`;
    };
    plot.current?.destroy();
    el.innerHTML = "";
    const u = new uPlot(opts, asUplotData(data), el);
    plot.current = u;
    (el as HTMLElement & { __uplot?: uPlot }).__uplot = u;
    // Expose what this panel drew.
    let points = 0;
    const perRun: Record<string, number> = {};
    const steps: Record<string, ArrayLike<number>> = {};
    for (const p of prepared) {
      perRun[p.run] = p.xs.length;
      steps[p.run] = p.xs;
      points += p.xs.length;
    }
    Object.assign(debug.current, { key: metric, runs: prepared.length, points, perRun, steps, lo: zoomed ? zoomed.range[0] : null, hi: zoomed ? zoomed.range[1] : null });
    window.__labbookCharts = window.__labbookCharts ?? {};
    window.__labbookCharts[metric] = { ...debug.current, requests: [...debug.current.requests] };
    if (marks?.length && settings.x === "step") root.current?.setAttribute("data-marks", marks.map((m) => m.step).join(","));
    else root.current?.removeAttribute("data-marks");
    root.current?.setAttribute("data-points", String(points));
    root.current?.setAttribute("data-zoomed", zoomed ? "1" : "0");
    return undefined;
  }, [prepared, width, height, settings.sync, settings.x, settings.logy, zoomKey, themeTick, colors, dashes, widths, marksKey]);

  useEffect(
    () => () => {
      plot.current?.destroy();
      plot.current = null;
      if (window.__labbookCharts) delete window.__labbookCharts[metric];
    },
    [],
  );

  const exportPng = () => {
    const u = plot.current;
    if (!u) return;
    const src = u.ctx.canvas;
    const c = document.createElement("canvas");
    const pad = 36 * devicePixelRatio;
    c.width = src.width;
    c.height = src.height + pad;
    const ctx = c.getContext("2d");
    if (!ctx) return;
    ctx.fillStyle = cssVar("--panel");
    ctx.fillRect(0, 0, c.width, c.height);
    ctx.fillStyle = cssVar("--text");
    ctx.font = `600 ${13 * devicePixelRatio}px ${cssVar("--font-sans")}`;
    ctx.fillText(metric, 12 * devicePixelRatio, 22 * devicePixelRatio);
    ctx.drawImage(src, 0, pad);
    download(c.toDataURL("image/png"), `${fileName(metric)}.png`);
  };

  const exportSvg = () => {
    const u = plot.current;
    if (!u) return;
    const svg = buildSvg(u, metric, prepared, names, colors, dashes, settings);
    download(URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" })), `${fileName(metric)}.svg`);
  };

  const anyDownsampled = shown ? [...shown.values()].some((s) => s.downsampled) : false;
  return (
    <div class="panel chart-panel" ref={root} data-metric={metric} data-testid="chart-panel" style={basis ? { flexBasis: basis } : undefined}>
      <div class="panel-head">
        <span class="panel-title" title={metric}>
          {metric}
        </span>
        <span class="panel-meta">
          {zoomed && <span class="badge">zoomed</span>}
          {anyDownsampled && <span class="badge subtle" title="Min/max-preserving downsampling to the panel's pixel width">downsampled</span>}
          {loading && <span class="spinner sm" title="Loading" />}
          <button class="icon-btn" title="Download PNG" onClick={exportPng}>
            PNG
          </button>
          <button class="icon-btn" title="Download SVG" onClick={exportSvg}>
            SVG
          </button>
        </span>
      </div>
      {error ? (
        <ErrorBox error={error} />
      ) : (
        <div class="plot" ref={plotEl} style={{ height: `${height}px` }}>
          {!loading && base && prepared.length === 0 && <div class="plot-empty">No data for these runs</div>}
        </div>
      )}
      <div class="chart-tip" ref={tipEl} />
    </div>
  );
}

/** Each mark inside the x range: a vertical line across the plot and its
 * label at the top, beside the line (on its left near the right edge). */
function drawMarks(u: uPlot, marks: StepMark[]) {
  if (!marks.length) return;
  const ctx = u.ctx;
  const { left, top, width, height } = u.bbox;
  const dpr = devicePixelRatio || 1;
  const red = cssVar("--red") || "#c93a3a";
  ctx.save();
  for (const m of marks) {
    const x = Math.round(u.valToPos(m.step, "x", true));
    if (!(x >= left && x <= left + width)) continue;
    ctx.strokeStyle = red;
    ctx.lineWidth = Math.max(1, Math.round(1.5 * dpr));
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
    ctx.font = `600 ${11 * dpr}px ${cssVar("--font-sans") || "system-ui"}`;
    ctx.fillStyle = red;
    ctx.textBaseline = "top";
    const w = ctx.measureText(m.label).width;
    const pad = 5 * dpr;
    const onLeft = x + pad + w > left + width;
    ctx.textAlign = onLeft ? "right" : "left";
    ctx.fillText(m.label, onLeft ? x - pad : x + pad, top + 4 * dpr);
  }
  ctx.restore();
}

function round(v: number): number {
  return Number(v.toPrecision(10));
}

function elem(tag: string, cls: string, text?: string): HTMLElement {
  const el = document.createElement(tag);
  el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function fileName(s: string): string {
  return s.replace(/[^\w.-]+/g, "_");
}

function download(href: string, name: string) {
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  if (href.startsWith("blob:")) setTimeout(() => URL.revokeObjectURL(href), 10000);
}

/** An SVG of the panel as drawn (scales from uPlot, curves from the data). */
function buildSvg(
  u: uPlot,
  title: string,
  prepared: Prepared[],
  names: Map<string, string>,
  colors: Map<string, string>,
  dashes: Map<string, number[] | null>,
  s: ChartSettings,
): string {
  const W = u.width;
  const H = u.height + 30;
  const bb = u.bbox;
  const dpr = devicePixelRatio || 1;
  const L = bb.left / dpr;
  const T = bb.top / dpr + 30;
  const PW = bb.width / dpr;
  const PH = bb.height / dpr;
  const xmin = u.scales.x.min ?? 0;
  const xmax = u.scales.x.max ?? 1;
  const ymin = u.scales.y.min ?? 0;
  const ymax = u.scales.y.max ?? 1;
  const sx = (x: number) => L + ((x - xmin) / (xmax - xmin || 1)) * PW;
  const sy = (y: number) =>
    s.logy ? T + PH - ((Math.log10(y) - Math.log10(ymin)) / (Math.log10(ymax) - Math.log10(ymin) || 1)) * PH : T + PH - ((y - ymin) / (ymax - ymin || 1)) * PH;
  const text = cssVar("--text");
  const muted = cssVar("--text-3");
  const grid = cssVar("--grid");
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, sans-serif" font-size="11">`);
  out.push(`<rect width="100%" height="100%" fill="${cssVar("--panel")}"/>`);
  out.push(`<text x="12" y="20" font-size="13" font-weight="600" fill="${text}">${esc(title)}</text>`);
  const yt = s.logy ? [] : ticks(ymin, ymax);
  const ylabels = fmtTicks(yt);
  yt.forEach((t, i) => {
    const y = sy(t);
    out.push(`<line x1="${L}" x2="${L + PW}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="${grid}"/>`);
    out.push(`<text x="${L - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" fill="${muted}">${esc(ylabels[i])}</text>`);
  });
  const xt = ticks(xmin, xmax);
  const xlabels = fmtTicks(xt);
  xt.forEach((t, i) => {
    const x = sx(t);
    out.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${T}" y2="${T + PH}" stroke="${grid}"/>`);
    const label = s.x === "time" ? new Date(t * 1000).toLocaleTimeString() : s.x === "rel" ? fmtDuration(t * 1000) : xlabels[i];
    out.push(`<text x="${x.toFixed(1)}" y="${T + PH + 16}" text-anchor="middle" fill="${muted}">${esc(label)}</text>`);
  });
  // Axis titles, as the panel draws them.
  out.push(`<text x="${(L + PW / 2).toFixed(1)}" y="${H - 4}" text-anchor="middle" fill="${muted}" font-weight="500">${esc(X_TITLES[s.x])}</text>`);
  out.push(`<text transform="translate(12 ${(T + PH / 2).toFixed(1)}) rotate(-90)" text-anchor="middle" fill="${muted}" font-weight="500">${esc(title)}</text>`);
  out.push(`<clipPath id="plot"><rect x="${L}" y="${T}" width="${PW}" height="${PH}"/></clipPath><g clip-path="url(#plot)" fill="none">`);
  for (const p of prepared) {
    const c = colors.get(p.run) ?? "#888";
    const layers: [ArrayLike<number | null>, string, number][] = p.smooth ? [[p.raw, withAlpha(c, 0.22), 1], [p.smooth, c, 1.6]] : [[p.raw, c, 1.5]];
    for (const [ys, stroke, w] of layers) {
      const segs: string[] = [];
      let cur: string[] = [];
      for (let i = 0; i < p.xs.length; i++) {
        const y = ys[i];
        if (y === null || (s.logy && y <= 0)) {
          if (cur.length) segs.push(cur.join(" "));
          cur = [];
          continue;
        }
        cur.push(`${sx(p.xs[i]).toFixed(1)},${sy(y).toFixed(1)}`);
      }
      if (cur.length) segs.push(cur.join(" "));
      const dash = dashes.get(p.run);
      const dashAttr = dash ? ` stroke-dasharray="${dash.join(" ")}"` : "";
      for (const seg of segs) out.push(`<polyline points="${seg}" stroke="${stroke}" stroke-width="${w}"${dashAttr}><title>${esc(names.get(p.run) ?? p.run)}</title></polyline>`);
    }
  }
  out.push(`</g></svg>`);
  return out.join("\n");
}

/** xs of a series in the current mode; re-exported for the run page. */
export { xsOf };
