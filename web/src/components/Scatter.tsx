// Scatter: a metric against a config key or another metric, colored by a
// group field; hover shows the run, click selects it.
import { useMemo, useState } from "preact/hooks";
import type { Run } from "../api";
import { ticks } from "../chartdata";
import type { FieldValue, Scale } from "../fields";
import { fieldChoices, fieldLabel, fieldValue, makeScale, position, preferredMetric, varyingConfig } from "../fields";
import { fmtNum, plural, runColor } from "../format";
import { listParam, runPath, setParams } from "../router";
import { Empty, ErrorBox, Loading, useElementWidth } from "./common";
import { FieldSelect, formatField, usePopulation } from "./Parallel";
import { useKeys } from "./RunsPage";

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f", "#2f9fd8"];

export function ScatterPage({ project, params }: { project: string; params: URLSearchParams }) {
  const keys = useKeys(project);
  const filter = params.get("filter") ?? "";
  const pop = usePopulation(project, filter);
  const choices = useMemo(() => fieldChoices(keys.data), [keys.data]);
  const metric = preferredMetric(keys.data);
  const firstConfig = varyingConfig(keys.data, pop.data?.runs ?? [])[0] ?? keys.data?.config[0]?.key;
  const x = params.get("sx") ?? (firstConfig ? `config.${firstConfig}` : "");
  const y = params.get("sy") ?? (metric ? `metrics.${metric}` : "");
  const color = params.get("sc") ?? "group";
  const xlog = params.get("xlog") === "1";
  const ylog = params.get("ylog") === "1";
  const selected = new Set(listParam(params, "runs"));
  const colorChoices = [
    { value: "group", label: "group", group: "Attributes" },
    { value: "status", label: "status", group: "Attributes" },
    { value: "tags", label: "tags", group: "Attributes" },
    { value: "run", label: "run (own color)", group: "Attributes" },
    ...choices.filter((c) => c.group === "Config"),
  ];

  if (keys.error) return <div class="page"><ErrorBox error={keys.error} retry={keys.reload} /></div>;
  if (pop.error) return <div class="page"><ErrorBox error={pop.error} retry={pop.reload} /></div>;
  const runs = pop.data?.runs ?? [];
  return (
    <div class="page">
      <div class="page-head">
        <h1>Scatter</h1>
        <span class="muted">{pop.data ? `${plural(runs.length, "run")}${filter ? " matching the filter" : ""}` : ""}{selected.size > 0 && ` · ${selected.size} selected`}</span>
      </div>
      <div class="toolbar wrap">
        <label class="ctl">
          <span>X</span>
          <FieldSelect value={x} choices={choices} onChange={(v) => setParams({ sx: v })} testid="scatter-x" />
        </label>
        <label class="ctl check">
          <input type="checkbox" checked={xlog} onChange={(e) => setParams({ xlog: (e.target as HTMLInputElement).checked ? "1" : null })} />
          <span>log</span>
        </label>
        <label class="ctl">
          <span>Y</span>
          <FieldSelect value={y} choices={choices} onChange={(v) => setParams({ sy: v })} testid="scatter-y" />
        </label>
        <label class="ctl check">
          <input type="checkbox" checked={ylog} onChange={(e) => setParams({ ylog: (e.target as HTMLInputElement).checked ? "1" : null })} />
          <span>log</span>
        </label>
        <label class="ctl">
          <span>Color by</span>
          <FieldSelect value={color} choices={colorChoices} onChange={(v) => setParams({ sc: v })} testid="scatter-color" />
        </label>
        {selected.size > 0 && (
          <button class="btn btn-sm" onClick={() => setParams({ runs: null })}>
            Clear selection
          </button>
        )}
      </div>
      {!pop.data || !keys.data ? (
        <Loading />
      ) : runs.length === 0 ? (
        <Empty title="No runs to plot">{filter ? "No run matches the filter." : "Log some runs first."}</Empty>
      ) : !x || !y ? (
        <Empty title="Pick the axes">Choose a field for X and for Y.</Empty>
      ) : (
        <ScatterPlot runs={runs} x={x} y={y} color={color} xlog={xlog} ylog={ylog} selected={selected} project={project} />
      )}
    </div>
  );
}

function colorKey(r: Run, field: string): string {
  if (field === "run") return r.id;
  const v = fieldValue(r, field);
  return v === null ? "(none)" : typeof v === "number" ? fmtNum(v) : v;
}

function axisTicks(s: Scale): { t: number; label: string }[] {
  if (s.kind === "cat") return s.cats.map((c) => ({ t: position(s, c) ?? 0, label: c }));
  if (s.log) {
    const out: { t: number; label: string }[] = [];
    const decades = Math.log10(s.hi / s.lo);
    const mults = decades <= 1.5 ? [1, 2, 3, 5] : decades <= 3 ? [1, 2, 5] : [1];
    for (let e = Math.floor(Math.log10(s.lo)); e <= Math.ceil(Math.log10(s.hi)); e++) {
      for (const m of mults) {
        const v = m * Math.pow(10, e);
        const t = position(s, v);
        if (t !== null && t >= -1e-9 && t <= 1 + 1e-9) out.push({ t, label: fmtNum(v) });
      }
    }
    return out;
  }
  return ticks(s.lo, s.hi, 6).map((v) => ({ t: position(s, v) ?? 0, label: fmtNum(v) }));
}

function ScatterPlot({ runs, x, y, color, xlog, ylog, selected, project }: { runs: Run[]; x: string; y: string; color: string; xlog: boolean; ylog: boolean; selected: Set<string>; project: string }) {
  const [wrap, width] = useElementWidth<HTMLDivElement>();
  const [hover, setHover] = useState<Run | null>(null);
  const W = Math.max(400, width);
  const H = 440;
  const M = { top: 16, right: 24, bottom: 44, left: 64 };
  const pad = (s: Scale): Scale => {
    if (s.kind !== "num") return s;
    if (s.log) {
      const f = Math.pow(s.hi / s.lo, 0.05);
      return { ...s, lo: s.lo / f, hi: s.hi * f };
    }
    return { ...s, lo: s.lo - (s.hi - s.lo) * 0.05, hi: s.hi + (s.hi - s.lo) * 0.05 };
  };
  const xs = useMemo(() => pad(makeScale(runs.map((r) => fieldValue(r, x)), xlog)), [runs, x, xlog]);
  const ys = useMemo(() => pad(makeScale(runs.map((r) => fieldValue(r, y)), ylog)), [runs, y, ylog]);
  const groups = useMemo(() => [...new Set(runs.map((r) => colorKey(r, color)))].sort(), [runs, color]);
  const colorOf = (r: Run) => (color === "run" ? runColor(r.id) : PALETTE[groups.indexOf(colorKey(r, color)) % PALETTE.length]);
  const px = (t: number) => M.left + t * (W - M.left - M.right);
  const py = (t: number) => M.top + (1 - t) * (H - M.top - M.bottom);
  // Categorical axes get a little jitter so equal values stay visible.
  const jitter = (id: string, s: Scale) => (s.kind === "cat" ? ((parseInt(id.slice(0, 4), 36) % 100) / 100 - 0.5) * 0.04 : 0);
  const points = runs
    .map((r) => {
      const tx = position(xs, fieldValue(r, x));
      const ty = position(ys, fieldValue(r, y));
      if (tx === null || ty === null) return null;
      return { r, cx: px(tx + jitter(r.id, xs)), cy: py(ty + jitter(r.id.split("").reverse().join(""), ys)) };
    })
    .filter((p): p is { r: Run; cx: number; cy: number } => p !== null);
  const missing = runs.length - points.length;

  const toggle = (id: string) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setParams({ runs: next.size ? [...next].join(",") : null });
  };

  return (
    <div class="card plot-card" ref={wrap}>
      <svg width={W} height={H} class="scatter" data-testid="scatter" data-points={points.length}>
        {axisTicks(xs).map((t) => (
          <g key={`x${t.label}`}>
            <line x1={px(t.t)} x2={px(t.t)} y1={M.top} y2={H - M.bottom} class="grid" />
            <text x={px(t.t)} y={H - M.bottom + 16} text-anchor="middle" class="tick">
              {t.label}
            </text>
          </g>
        ))}
        {axisTicks(ys).map((t) => (
          <g key={`y${t.label}`}>
            <line x1={M.left} x2={W - M.right} y1={py(t.t)} y2={py(t.t)} class="grid" />
            <text x={M.left - 8} y={py(t.t) + 3.5} text-anchor="end" class="tick">
              {t.label}
            </text>
          </g>
        ))}
        <text x={(M.left + W - M.right) / 2} y={H - 6} text-anchor="middle" class="axis-title">
          {fieldLabel(x)}
        </text>
        <text x={14} y={(M.top + H - M.bottom) / 2} text-anchor="middle" class="axis-title" transform={`rotate(-90 14 ${(M.top + H - M.bottom) / 2})`}>
          {fieldLabel(y)}
        </text>
        {points.map(({ r, cx, cy }) => {
          const sel = selected.has(r.id);
          return (
            <circle
              key={r.id}
              class={`pt ${sel ? "sel" : ""} ${selected.size && !sel ? "dim" : ""}`}
              cx={cx}
              cy={cy}
              r={sel ? 6 : 4.5}
              fill={colorOf(r)}
              data-run={r.id}
              onPointerEnter={() => setHover(r)}
              onPointerLeave={() => setHover(null)}
              onClick={() => toggle(r.id)}
            />
          );
        })}
      </svg>
      <div class="plot-foot">
        {hover ? (
          <span data-testid="scatter-hover">
            <a href={runPath(project, hover.id)}>{hover.name}</a>{" "}
            <span class="muted">
              {fieldLabel(x)} = {formatField(fieldValue(hover, x) as FieldValue)} · {fieldLabel(y)} = {formatField(fieldValue(hover, y))} · {colorKey(hover, color)}
            </span>
          </span>
        ) : (
          <span class="muted">
            Hover a point to see its run; click to select it.{missing > 0 && ` ${plural(missing, "run lacks", "runs lack")} one of the fields.`}
          </span>
        )}
        {color !== "run" && (
          <span class="group-legend">
            {groups.slice(0, 12).map((g, i) => (
              <span key={g} class="legend-item static">
                <span class="swatch" style={{ background: PALETTE[i % PALETTE.length] }} />
                {g}
              </span>
            ))}
          </span>
        )}
      </div>
    </div>
  );
}
