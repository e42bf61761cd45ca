// Parallel coordinates over config keys and a metric. Brushing an axis
// selects the runs inside every brush (the same selection the runs table,
// charts and compare use).
import { useMemo, useRef, useState } from "preact/hooks";
import type { Run } from "../api";
import { api } from "../api";
import type { Scale } from "../fields";
import { autoScale, fieldChoices, fieldLabel, fieldValue, position, preferredMetric, ramp, varyingConfig } from "../fields";
import { ticks } from "../chartdata";
import { fmtNum, plural, runColor } from "../format";
import { listParam, projectPath, runPath, setParams, withParams } from "../router";
import { cssVar } from "../theme";
import { Empty, ErrorBox, Loading, useAsync, useElementWidth } from "./common";
import { useKeys } from "./RunsPage";

const LIMIT = 2000;

export function usePopulation(project: string, filter: string) {
  return useAsync((signal) => api.runs(project, { filter: filter || undefined, limit: LIMIT }, signal), [project, filter]);
}

type Brush = { field: string; t0: number; t1: number };

function parseBrushes(v: string | null): Brush[] {
  if (!v) return [];
  return v
    .split("|")
    .map((s) => {
      const i = s.lastIndexOf("~");
      const j = s.lastIndexOf("~", i - 1);
      return { field: s.slice(0, j), t0: Number(s.slice(j + 1, i)), t1: Number(s.slice(i + 1)) };
    })
    .filter((b) => b.field && Number.isFinite(b.t0) && Number.isFinite(b.t1));
}

function brushParam(bs: Brush[]): string | null {
  return bs.length ? bs.map((b) => `${b.field}~${b.t0.toFixed(3)}~${b.t1.toFixed(3)}`).join("|") : null;
}

export function ParallelPage({ project, params }: { project: string; params: URLSearchParams }) {
  const keys = useKeys(project);
  const filter = params.get("filter") ?? "";
  const pop = usePopulation(project, filter);
  const choices = useMemo(() => fieldChoices(keys.data), [keys.data]);
  const axesParam = params.getAll("axis");
  const defaults = useMemo(() => {
    if (!keys.data) return [];
    const cfg = varyingConfig(keys.data, pop.data?.runs ?? []).slice(0, 6).map((k) => `config.${k}`);
    const m = preferredMetric(keys.data);
    return [...cfg, ...(m ? [`metrics.${m}`] : [])];
  }, [keys.data, pop.data]);
  const axes = axesParam.length ? axesParam : defaults;
  const color = params.get("color") ?? axes[axes.length - 1] ?? "";
  const brushes = parseBrushes(params.get("brush"));
  const selected = new Set(listParam(params, "runs"));

  if (keys.error) return <div class="page"><ErrorBox error={keys.error} retry={keys.reload} /></div>;
  if (pop.error) return <div class="page"><ErrorBox error={pop.error} retry={pop.reload} /></div>;
  const runs = pop.data?.runs ?? [];

  const setAxes = (next: string[]) => setParams({ axis: next, brush: brushParam(brushes.filter((b) => next.includes(b.field))) });

  return (
    <div class="page">
      <div class="page-head">
        <h1>Parallel coordinates</h1>
        <span class="muted">
          {pop.data ? `${pop.data.total > runs.length ? `${runs.length.toLocaleString("en-US")} of ` : ""}${plural(pop.data.total, "run")}${filter ? " matching the filter" : ""}` : ""}
          {selected.size > 0 && ` · ${selected.size} selected`}
        </span>
      </div>
      <div class="toolbar wrap">
        <div class="axis-chips">
          {axes.map((a, i) => (
            <span class="chip" key={a}>
              <span class="mono">{fieldLabel(a)}</span>
              {i > 0 && (
                <button class="icon-btn" title="Move left" onClick={() => setAxes(axes.map((x, j) => (j === i - 1 ? a : j === i ? axes[i - 1] : x)))}>
                  ‹
                </button>
              )}
              <button class="icon-btn" title="Remove this axis" onClick={() => setAxes(axes.filter((x) => x !== a))}>
                ×
              </button>
            </span>
          ))}
        </div>
        <label class="ctl">
          <span>Add axis</span>
          <FieldSelect value="" choices={choices.filter((c) => !axes.includes(c.value))} onChange={(v) => v && setAxes([...axes, v])} placeholder="Choose…" testid="add-axis" />
        </label>
        <label class="ctl">
          <span>Color by</span>
          <FieldSelect value={color} choices={[{ value: "run", label: "run (own color)", group: "Attributes" }, ...choices]} onChange={(v) => setParams({ color: v || null })} testid="color-by" />
        </label>
        {brushes.length > 0 && (
          <button class="btn btn-sm" onClick={() => setParams({ brush: null, runs: null })}>
            Clear brushes
          </button>
        )}
        {selected.size > 0 && (
          <a class="btn btn-sm" href={projectPath(project) + withParams({ runs: [...selected].join(","), filter: filter || null }, "")}>
            Show selection in table
          </a>
        )}
      </div>
      {!pop.data || !keys.data ? (
        <Loading />
      ) : runs.length === 0 ? (
        <Empty title="No runs to plot">{filter ? "No run matches the filter." : "Log some runs first."}</Empty>
      ) : axes.length < 2 ? (
        <Empty title="Pick at least two axes">Add config keys and a metric with “Add axis”.</Empty>
      ) : (
        <ParallelPlot runs={runs} axes={axes} color={color} brushes={brushes} selected={selected} project={project} />
      )}
    </div>
  );
}

export function FieldSelect({
  value,
  choices,
  onChange,
  placeholder,
  testid,
}: {
  value: string;
  choices: { value: string; label: string; group: string }[];
  onChange: (v: string) => void;
  placeholder?: string;
  testid?: string;
}) {
  const groups = [...new Set(choices.map((c) => c.group))];
  return (
    <select value={value} onChange={(e) => onChange((e.target as HTMLSelectElement).value)} data-testid={testid}>
      {placeholder !== undefined && <option value="">{placeholder}</option>}
      {groups.map((g) => (
        <optgroup label={g} key={g}>
          {choices
            .filter((c) => c.group === g)
            .map((c) => (
              <option value={c.value} key={c.value}>
                {c.label}
              </option>
            ))}
        </optgroup>
      ))}
    </select>
  );
}

/** Labelled ticks of an axis `px` pixels tall: both ends (the lowest and
 * highest value) always, and in between round values that keep clear of
 * them: decades on a log axis, whole numbers only on an integer one. */
export function tickLabels(s: Scale, px: number): { t: number; label: string; end?: boolean }[] {
  if (s.kind === "cat") {
    const step = Math.ceil(s.cats.length / Math.max(2, Math.floor(px / 16)));
    const clip = (c: string) => (c.length > 18 ? `${c.slice(0, 17)}…` : c);
    return s.cats.filter((_, i) => i % step === 0 || i === s.cats.length - 1).map((c) => ({ t: position(s, c) ?? 0, label: clip(c) }));
  }
  let inner: number[];
  if (s.log) {
    inner = [];
    const decades = Math.log10(s.hi / s.lo);
    const mults = decades <= 2.5 ? [1, 2, 5] : [1];
    for (let e = Math.floor(Math.log10(s.lo)); e <= Math.ceil(Math.log10(s.hi)); e++) for (const m of mults) inner.push(Number((m * Math.pow(10, e)).toPrecision(12)));
  } else {
    inner = ticks(s.lo, s.hi, Math.max(2, Math.min(6, Math.floor(px / 50))));
    if (s.integer) inner = inner.filter((v) => Number.isInteger(v));
  }
  const clear = 16 / Math.max(1, px); // a label's height, as a share of the axis
  const out: { t: number; label: string; end?: boolean }[] = [
    { t: 0, label: fmtNum(s.lo), end: true },
    { t: 1, label: fmtNum(s.hi), end: true },
  ];
  for (const v of inner) {
    const t = position(s, v);
    if (t === null || t < clear || t > 1 - clear) continue;
    if (out.some((o) => Math.abs(o.t - t) < clear)) continue;
    out.push({ t, label: fmtNum(v) });
  }
  return out.sort((a, b) => a.t - b.t);
}

function ParallelPlot({ runs, axes, color, brushes, selected, project }: { runs: Run[]; axes: string[]; color: string; brushes: Brush[]; selected: Set<string>; project: string }) {
  const [wrap, width] = useElementWidth<HTMLDivElement>();
  const [drag, setDrag] = useState<{ field: string; a: number; b: number } | null>(null);
  const [hover, setHover] = useState<Run | null>(null);
  const svg = useRef<SVGSVGElement>(null);
  const H = 420;
  const M = { top: 40, bottom: 28, left: 60, right: 60 };
  const W = Math.max(400, width);
  const ih = H - M.top - M.bottom;
  const scales = useMemo(() => axes.map((a) => autoScale(runs.map((r) => fieldValue(r, a)))), [runs, axes.join("\u0000")]);
  const byRun = color === "run";
  const colorScale = useMemo(() => autoScale(runs.map((r) => fieldValue(r, color))), [runs, color]);
  const xOf = (i: number) => M.left + (axes.length === 1 ? 0 : (i * (W - M.left - M.right)) / (axes.length - 1));
  const yOf = (t: number) => M.top + (1 - t) * ih;

  const inBrushes = (r: Run) =>
    brushes.every((b) => {
      const i = axes.indexOf(b.field);
      if (i < 0) return true;
      const p = position(scales[i], fieldValue(r, b.field));
      return p !== null && p >= Math.min(b.t0, b.t1) - 1e-9 && p <= Math.max(b.t0, b.t1) + 1e-9;
    });

  const lines = runs.map((r) => {
    const pts: string[] = [];
    let pen = false;
    const segs: string[] = [];
    axes.forEach((a, i) => {
      const p = position(scales[i], fieldValue(r, a));
      if (p === null) {
        if (pts.length) segs.push(pts.join(" "));
        pts.length = 0;
        pen = false;
        return;
      }
      pts.push(`${xOf(i).toFixed(1)},${yOf(p).toFixed(1)}`);
      pen = true;
    });
    if (pen && pts.length) segs.push(pts.join(" "));
    const cp = position(colorScale, fieldValue(r, color));
    const active = brushes.length ? inBrushes(r) : selected.size ? selected.has(r.id) : true;
    return { r, segs, stroke: byRun ? runColor(r.id) : cp === null ? "var(--text-3)" : ramp(cp), active };
  });
  const activeCount = lines.filter((l) => l.active).length;

  const toT = (clientY: number) => {
    const box = svg.current?.getBoundingClientRect();
    if (!box) return 0;
    return Math.max(0, Math.min(1, 1 - (clientY - box.top - M.top) / ih));
  };

  const commit = (field: string, a: number, b: number) => {
    let next = brushes.filter((x) => x.field !== field);
    if (Math.abs(a - b) > 0.01) next = [...next, { field, t0: Math.min(a, b), t1: Math.max(a, b) }];
    const ids = next.length
      ? runs
          .filter((r) =>
            next.every((br) => {
              const i = axes.indexOf(br.field);
              const p = i < 0 ? 0 : position(scales[i], fieldValue(r, br.field));
              return i < 0 || (p !== null && p >= br.t0 - 1e-9 && p <= br.t1 + 1e-9);
            }),
          )
          .map((r) => r.id)
      : [];
    setParams({ brush: brushParam(next), runs: ids.length ? ids.join(",") : null });
  };

  return (
    <div class="card plot-card" ref={wrap}>
      <svg
        ref={svg}
        width={W}
        height={H}
        class="pc"
        data-testid="parallel"
        data-lines={lines.length}
        data-active={activeCount}
        onPointerMove={(e) => drag && setDrag({ ...drag, b: toT(e.clientY) })}
        onPointerUp={() => {
          if (drag) commit(drag.field, drag.a, drag.b);
          setDrag(null);
        }}
      >
        <g class="pc-lines">
          {lines
            .filter((l) => !l.active)
            .map((l) => l.segs.map((s, k) => <polyline key={`${l.r.id}-${k}`} class="pc-line inactive" points={s} data-run={l.r.id} />))}
          {lines
            .filter((l) => l.active)
            .map((l) =>
              l.segs.map((s, k) => (
                <polyline
                  key={`${l.r.id}-${k}`}
                  class={`pc-line active ${hover?.id === l.r.id ? "hover" : ""}`}
                  points={s}
                  stroke={l.stroke}
                  data-run={l.r.id}
                  onPointerEnter={() => setHover(l.r)}
                  onPointerLeave={() => setHover(null)}
                />
              )),
            )}
        </g>
        {axes.map((a, i) => {
          const x = xOf(i);
          const b = drag?.field === a ? { t0: Math.min(drag.a, drag.b), t1: Math.max(drag.a, drag.b) } : brushes.find((br) => br.field === a);
          return (
            <g key={a} class="pc-axis" data-axis={a}>
              <line x1={x} x2={x} y1={M.top} y2={M.top + ih} class="axis-line" />
              {b && <rect x={x - 8} width={16} y={yOf(b.t1)} height={Math.max(1, yOf(b.t0) - yOf(b.t1))} class="brush" />}
              <text x={x} y={M.top - 16} text-anchor="middle" class="axis-title">
                {fieldLabel(a)}
              </text>
              {/* After the lines, each on a backing of the card's color: lines
                  pass under a label, never through it. */}
              {tickLabels(scales[i], ih).map((t) => {
                const w = textWidth(t.label);
                const y = yOf(t.t);
                return (
                  <g key={`${t.t}`} class={`pc-tick ${t.end ? "end" : ""}`} data-t={t.t} data-label={t.label}>
                    <line x1={x - 4} x2={x} y1={y} y2={y} class="axis-line" />
                    <rect x={x - 9 - w} y={y - 7.5} width={w + 6} height={15} rx={3} class="tick-bg" />
                    <text x={x - 6} y={y + 3.5} text-anchor="end" class="tick">
                      {t.label}
                    </text>
                  </g>
                );
              })}
              <rect
                x={x - 14}
                width={28}
                y={M.top - 4}
                height={ih + 8}
                class="brush-hit"
                data-testid={`brush-${i}`}
                onPointerDown={(e) => {
                  (e.target as Element).setPointerCapture?.((e as PointerEvent).pointerId);
                  const t = toT(e.clientY);
                  setDrag({ field: a, a: t, b: t });
                }}
                onPointerMove={(e) => drag && setDrag({ ...drag, b: toT(e.clientY) })}
                onPointerUp={() => {
                  if (drag) commit(drag.field, drag.a, drag.b);
                  setDrag(null);
                }}
              />
            </g>
          );
        })}
      </svg>
      <div class="plot-foot">
        {hover ? (
          <span class="hover-run">
            <span class="swatch" style={{ backgroundColor: runColor(hover.id) }} />
            <a href={runPath(project, hover.id)}>{hover.name}</a>{" "}
            <span class="muted">
              {axes.map((a) => `${fieldLabel(a)}=${formatField(fieldValue(hover, a))}`).join(" · ")}
            </span>
          </span>
        ) : (
          <span class="muted">Drag along an axis to brush; click an axis to clear its brush. {activeCount} of {plural(lines.length, "run")} highlighted.</span>
        )}
        {byRun ? (
          <span class="color-legend muted">each run in its own color</span>
        ) : (
          <span class="color-legend">
            <span class="muted">
              {fieldLabel(color)}
              {colorScale.kind === "num" && colorScale.log ? " (log)" : ""}
            </span>
            {colorScale.kind === "num" && <span class="num">{fmtNum(colorScale.lo)}</span>}
            <span class="ramp" />
            {colorScale.kind === "num" && <span class="num">{fmtNum(colorScale.hi)}</span>}
          </span>
        )}
      </div>
    </div>
  );
}

let measure: CanvasRenderingContext2D | null = null;
const widths = new Map<string, number>();

/** The width of a tick label in the SVG's 11 px font. */
function textWidth(s: string): number {
  let w = widths.get(s);
  if (w === undefined) {
    measure ??= document.createElement("canvas").getContext("2d");
    if (measure) measure.font = `11px ${cssVar("--font-sans") || "sans-serif"}`;
    w = measure ? measure.measureText(s).width : s.length * 6.5;
    widths.set(s, w);
  }
  return w;
}

export function formatField(v: number | string | null): string {
  if (v === null) return "—";
  return typeof v === "number" ? fmtNum(v) : v;
}
