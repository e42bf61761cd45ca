// Parallel coordinates over config keys and a metric. Brushing an axis
// selects the runs inside every brush (the same selection the runs table,
// charts and compare use).
import { useMemo, useRef, useState } from "preact/hooks";
import type { Run } from "../api";
import { api } from "../api";
import type { Scale } from "../fields";
import { fieldChoices, fieldLabel, fieldValue, invert, makeScale, position, preferredMetric, ramp, varyingConfig } from "../fields";
import { ticks } from "../chartdata";
import { fmtNum } from "../format";
import { listParam, projectPath, runPath, setParams, withParams } from "../router";
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
          {pop.data ? `${runs.length}${pop.data.total > runs.length ? ` of ${pop.data.total}` : ""} runs${filter ? " matching the filter" : ""}` : ""}
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
          <FieldSelect value={color} choices={choices} onChange={(v) => setParams({ color: v || null })} testid="color-by" />
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

function tickLabels(s: Scale): { t: number; label: string }[] {
  if (s.kind === "cat") {
    const step = Math.ceil(s.cats.length / 12);
    return s.cats.filter((_, i) => i % step === 0).map((c) => ({ t: position(s, c) ?? 0, label: c.length > 18 ? `${c.slice(0, 17)}…` : c }));
  }
  if (s.log) {
    const out: { t: number; label: string }[] = [];
    for (let i = 0; i <= 4; i++) out.push({ t: i / 4, label: fmtNum(invert(s, i / 4)) });
    return out;
  }
  return ticks(s.lo, s.hi, 5).map((v) => ({ t: position(s, v) ?? 0, label: fmtNum(v) }));
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
  const scales = useMemo(() => axes.map((a) => makeScale(runs.map((r) => fieldValue(r, a)))), [runs, axes.join("\u0000")]);
  const colorScale = useMemo(() => makeScale(runs.map((r) => fieldValue(r, color))), [runs, color]);
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
    return { r, segs, stroke: cp === null ? "var(--text-3)" : ramp(cp), active };
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
              <text x={x} y={M.top - 16} text-anchor="middle" class="axis-title">
                {fieldLabel(a)}
              </text>
              {tickLabels(scales[i]).map((t) => (
                <g key={`${t.t}`}>
                  <line x1={x - 3} x2={x} y1={yOf(t.t)} y2={yOf(t.t)} class="axis-line" />
                  <text x={x - 6} y={yOf(t.t) + 3.5} text-anchor="end" class="tick">
                    {t.label}
                  </text>
                </g>
              ))}
              {b && <rect x={x - 8} width={16} y={yOf(b.t1)} height={Math.max(1, yOf(b.t0) - yOf(b.t1))} class="brush" />}
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
          <span>
            <a href={runPath(project, hover.id)}>{hover.name}</a>{" "}
            <span class="muted">
              {axes.map((a) => `${fieldLabel(a)}=${formatField(fieldValue(hover, a))}`).join(" · ")}
            </span>
          </span>
        ) : (
          <span class="muted">Drag along an axis to brush; click an axis to clear its brush. {activeCount} of {lines.length} runs highlighted.</span>
        )}
        <span class="color-legend">
          <span class="muted">{fieldLabel(color)}</span>
          {colorScale.kind === "num" && <span class="num">{fmtNum(colorScale.lo)}</span>}
          <span class="ramp" />
          {colorScale.kind === "num" && <span class="num">{fmtNum(colorScale.hi)}</span>}
        </span>
      </div>
    </div>
  );
}

export function formatField(v: number | string | null): string {
  if (v === null) return "—";
  return typeof v === "number" ? fmtNum(v) : v;
}
