// Hyperparameter searches (issue 13): a project's sweeps (`labbook sweep`)
// and studies (`labbook.study()`) at /p/<project>/sweeps, and one search at
// /p/<project>/sweep/<id>: what it is for and its best trial, the
// optimization history, the parameters' importance, a slice per parameter,
// every trial's intermediate values, and the trials. Loaded on first visit
// (its own chunk).
import { useMemo, useState } from "preact/hooks";
import type { ConfigValue, Domain, StudyBrief, StudyDetail, Trial, TrialState } from "../api";
import { ApiError, api } from "../api";
import { fmtDate, fmtDuration, fmtNum, fmtRelative, fmtValue, plural } from "../format";
import { navigate, projectPath, runPath, setParams, sweepPath, withParams } from "../router";
import type { ParamAxis } from "../search";
import { TRIAL_STATES, arrow, catLabel, domainText, paramAxis, runsFilter, sortTrials } from "../search";
import { Empty, ErrorBox, Loading, Section, useAsync, useElementWidth } from "./common";
import type { Curve, HistoryRow, SlicePoint } from "./SearchPlots";
import { CurvesPlot, HistoryPlot, SlicePlot, padRange } from "./SearchPlots";
import "./search.css";

// ---------------------------------------------------------------------------
// Shared pieces

/** A study's or a trial's state as a pill (styles.css and search.css). */
export function StatePill({ state, title }: { state: string; title?: string }) {
  return (
    <span class={`pill pill-${state}`} data-state={state} title={title}>
      <span class="dot" />
      {state}
    </span>
  );
}

export function KindBadge({ kind }: { kind: string }) {
  const title = kind === "sweep" ? "A W&B-style sweep run by labbook sweep" : kind === "study" ? "An Optuna-style study: labbook.study()" : undefined;
  return (
    <span class={`badge kind-badge kind-${kind}`} title={title} data-kind={kind}>
      {kind}
    </span>
  );
}

/** Trials by state as one stacked bar, the total beside it. */
export function CountsBar({ counts, total, wide }: { counts: Partial<Record<TrialState, number>>; total: number; wide?: boolean }) {
  const parts = TRIAL_STATES.map((s) => ({ s, n: counts[s] ?? 0 })).filter((p) => p.n > 0);
  const sum = parts.reduce((a, p) => a + p.n, 0) || 1;
  const title = parts.map((p) => `${p.n} ${p.s}`).join(" · ") || "no trials yet";
  return (
    <span class={`counts ${wide ? "wide" : ""}`} title={title} data-testid="counts">
      <span class="num counts-total">{fmtNum(total)}</span>
      <span class="counts-bar" aria-label={title}>
        {parts.map((p) => (
          <span key={p.s} class={`counts-seg seg-${p.s}`} data-state={p.s} data-n={p.n} style={{ width: `${(p.n / sum) * 100}%` }} />
        ))}
      </span>
    </span>
  );
}

/** The counts as a legend: a dot per state with its number. */
function CountsLegend({ counts }: { counts: Partial<Record<TrialState, number>> }) {
  const parts = TRIAL_STATES.map((s) => ({ s, n: counts[s] ?? 0 })).filter((p) => p.n > 0);
  return (
    <span class="counts-legend">
      {parts.map((p) => (
        <span key={p.s} class="counts-item" data-state={p.s}>
          <span class={`counts-dot seg-${p.s}`} />
          <span class="num">{fmtNum(p.n)}</span> {p.s}
        </span>
      ))}
    </span>
  );
}

function MetricText({ s }: { s: Pick<StudyBrief, "metric" | "direction"> }) {
  return (
    <span class="metric-dir" title={s.direction}>
      <span class="mono">{s.metric ?? "—"}</span> <span class={`dir dir-${s.direction}`}>{arrow(s.direction)}</span>
      <span class="muted"> {s.direction}</span>
    </span>
  );
}

function ParamChips({ params }: { params: { [k: string]: ConfigValue } }) {
  return (
    <span class="param-chips">
      {Object.entries(params).map(([k, v]) => (
        <span class="param-chip" key={k}>
          <span class="param-k">{k}</span>
          <span class="param-v">{fmtValue(v)}</span>
        </span>
      ))}
    </span>
  );
}

// ---------------------------------------------------------------------------
// The list

export function SweepsPage({ project }: { project: string }) {
  const list = useAsync((signal) => api.studies(project, signal), [project]);
  const studies = list.data?.studies ?? [];
  return (
    <div class="page sweeps-page">
      <div class="page-head">
        <h1>Sweeps</h1>
        {list.data && (
          <span class="muted" data-testid="sweep-count">
            {plural(studies.filter((s) => s.kind === "sweep").length, "sweep")} · {plural(studies.filter((s) => s.kind === "study").length, "study", "studies")}
          </span>
        )}
        <a class="btn btn-sm push-right" href={projectPath(project, "report")}>
          Morning report →
        </a>
      </div>
      {list.error ? (
        <ErrorBox error={list.error} retry={list.reload} />
      ) : !list.data ? (
        <Loading />
      ) : studies.length === 0 ? (
        <Empty title="No sweeps or studies yet">
          <p>
            Create a sweep from a W&B sweep file with <code>labbook sweep create sweep.yaml --project {project}</code> and run it with <code>labbook sweep run ID</code>, or search from
            Python with <code>labbook.study("name", project="{project}")</code>.
          </p>
        </Empty>
      ) : (
        <div class="card table-card">
          <table class="table sweeps-table" data-testid="sweeps">
            <thead>
              <tr>
                <th>Name</th>
                <th>Kind</th>
                <th>Method</th>
                <th>State</th>
                <th>Metric</th>
                <th>Trials</th>
                <th class="num">Best</th>
                <th class="num">Created</th>
              </tr>
            </thead>
            <tbody>
              {studies.map((s) => (
                <tr key={s.id} data-study={s.id} data-kind={s.kind}>
                  <td class="sweep-name-cell">
                    <a class="sweep-name" href={sweepPath(project, s.id)} data-testid="sweep-link">
                      {s.name}
                    </a>
                    <span class="mono muted small">{s.id}</span>
                    {s.why && (
                      <div class="sweep-why" title={s.why}>
                        {s.why}
                      </div>
                    )}
                  </td>
                  <td>
                    <KindBadge kind={s.kind} />
                  </td>
                  <td class="mono">{s.method ?? "—"}</td>
                  <td>
                    <StatePill state={s.state} title={s.state_reason ?? undefined} />
                    {s.state_reason && <div class="muted small state-reason">{s.state_reason}</div>}
                  </td>
                  <td>{s.metric ? <MetricText s={s} /> : <span class="muted">—</span>}</td>
                  <td>
                    <CountsBar counts={s.counts} total={s.trials} />
                    <div class="muted small counts-text">
                      {TRIAL_STATES.filter((st) => s.counts[st])
                        .map((st) => `${fmtNum(s.counts[st] ?? 0)} ${st}`)
                        .join(" · ")}
                    </div>
                  </td>
                  <td class="num">
                    {s.best && s.best.value !== null ? (
                      <>
                        <span class="best-val" data-testid="best-value">
                          {fmtNum(s.best.value)}
                        </span>
                        <div class="muted small">#{s.best.number}</div>
                      </>
                    ) : (
                      <span class="muted">—</span>
                    )}
                  </td>
                  <td class="num muted" title={fmtDate(s.created_ms)}>
                    {fmtRelative(s.created_ms)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

// ---------------------------------------------------------------------------
// One search

export function SweepPage({ project, id, params }: { project: string; id: string; params: URLSearchParams }) {
  const d = useAsync((signal) => api.study(id, signal), [id]);
  if (d.error) {
    const missing = d.error instanceof ApiError && d.error.status === 404;
    return (
      <div class="page">
        {missing ? (
          <Empty title={`No sweep or study ${id}`}>
            <p>No search in this store has this id or name.</p>
            <a class="btn" href={projectPath(project, "sweeps")} data-testid="back-to-sweeps">
              ← The sweeps of {project}
            </a>
          </Empty>
        ) : (
          <ErrorBox error={d.error} retry={d.reload} />
        )}
      </div>
    );
  }
  if (!d.data) return <div class="page"><Loading label="Loading the search…" /></div>;
  return <SweepBody project={project} d={d.data} params={params} />;
}

function SweepBody({ project, d, params }: { project: string; d: StudyDetail; params: URLSearchParams }) {
  const s = d.study;
  const metric = s.metric ?? "value";
  const names = Object.keys(d.params);
  const complete = d.trials.filter((t) => t.state === "complete" && t.value !== null);
  const logy = params.get("logy") === "1";
  const canLog = complete.length > 0 && complete.every((t) => (t.value ?? 0) > 0);
  const byNumber = useMemo(() => new Map(d.trials.map((t) => [t.number, t])), [d]);
  const open = (n: number) => {
    const run = byNumber.get(n)?.run_id;
    if (run) navigate(runPath(project, run));
  };
  const filter = runsFilter(s);
  const order = d.importance.length ? d.importance.map((i) => i.name).filter((n) => names.includes(n)) : names;
  const rest = names.filter((n) => !order.includes(n));
  const ordered = [...order, ...rest];
  const links = {
    runs: projectPath(project) + withParams({ filter }, ""),
    parallel: projectPath(project, "parallel") + withParams({ filter, axis: [...ordered.slice(0, 6).map((n) => `config.${n}`), ...(s.metric ? [`metrics.${s.metric}`] : [])], color: s.metric ? `metrics.${s.metric}` : null }, ""),
    scatter:
      projectPath(project, "scatter") +
      withParams(
        {
          filter,
          sx: ordered[0] ? `config.${ordered[0]}` : null,
          sy: s.metric ? `metrics.${s.metric}` : null,
          xlog: ordered[0] && isLog(d.params[ordered[0]]) ? "1" : null,
          sc: "status",
        },
        "",
      ),
  };
  const best = s.best;
  return (
    <div class="page sweep-page" data-study={s.id} data-kind={s.kind}>
      <div class="crumbs">
        <a href={projectPath(project)}>{project}</a>
        <span class="muted">/</span>
        <a href={projectPath(project, "sweeps")}>Sweeps</a>
        <span class="muted">/</span>
        <span>{s.name}</span>
      </div>
      <div class="run-head sweep-head">
        <div class="run-title">
          <h1 data-testid="sweep-name">{s.name}</h1>
          <KindBadge kind={s.kind} />
          <StatePill state={s.state} title={s.state_reason ?? undefined} />
        </div>
        <div class="run-actions sweep-links">
          <a class="btn btn-sm" href={links.runs} data-testid="link-runs" title="The trials' runs in the runs table">
            Runs
          </a>
          <a class="btn btn-sm" href={links.parallel} data-testid="link-parallel" title="The trials' runs in parallel coordinates">
            Parallel coordinates
          </a>
          <a class="btn btn-sm" href={links.scatter} data-testid="link-scatter" title="The trials' runs in a scatter plot">
            Scatter
          </a>
        </div>
      </div>
      {s.why && (
        <p class="sweep-why-line" data-testid="sweep-why">
          {s.why}
        </p>
      )}
      <div class="sweep-summary">
        <dl class="facts sweep-facts">
          <div class="fact">
            <dt>ID</dt>
            <dd class="mono">{s.id}</dd>
          </div>
          <div class="fact">
            <dt>Metric</dt>
            <dd>
              <MetricText s={s} />
            </dd>
          </div>
          <div class="fact">
            <dt>Method</dt>
            <dd class="mono">{s.method ?? "—"}</dd>
          </div>
          {s.state_reason && (
            <div class="fact">
              <dt>State</dt>
              <dd data-testid="state-reason">{s.state_reason}</dd>
            </div>
          )}
          <div class="fact">
            <dt>Created</dt>
            <dd title={fmtDate(s.created_ms)}>{fmtRelative(s.created_ms)}</dd>
          </div>
          <div class="fact fact-wide">
            <dt>Trials</dt>
            <dd class="trials-fact">
              <CountsBar counts={s.counts} total={s.trials} wide />
              <CountsLegend counts={s.counts} />
            </dd>
          </div>
        </dl>
        <div class="best-card" data-testid="best-trial">
          <div class="best-label">Best trial</div>
          {best && best.value !== null ? (
            <>
              <div class="best-line">
                <span class="best-number num" data-testid="best-value">
                  {fmtNum(best.value)}
                </span>
                <span class="muted">
                  {s.metric ?? "value"} · trial #{best.number}
                </span>
                {best.run_id && (
                  <a href={runPath(project, best.run_id)} class="best-run" data-testid="best-run">
                    run <span class="mono">{best.run_id}</span> →
                  </a>
                )}
              </div>
              <ParamChips params={best.params} />
            </>
          ) : (
            <div class="muted">No complete trial yet.</div>
          )}
        </div>
      </div>
      <div class="stack">
        <div class="sweep-row">
          <HistoryCard d={d} metric={metric} logy={logy && canLog} canLog={canLog} logParam={logy} byNumber={byNumber} open={open} />
          <ImportanceCard d={d} />
        </div>
        <SlicesCard d={d} names={ordered} metric={metric} logy={logy && canLog} byNumber={byNumber} open={open} />
        <CurvesCard d={d} metric={metric} logy={logy && canLog} params={params} byNumber={byNumber} open={open} />
        <TrialsCard project={project} d={d} names={names} params={params} />
      </div>
    </div>
  );
}

/** Whether a parameter's column holds numbers (right-aligned). */
function numeric(d: Domain | null | undefined, values: (ConfigValue | undefined)[]): boolean {
  if (d) return d.type !== "categorical" || d.choices.every((c) => typeof c === "number");
  return values.every((v) => v === undefined || typeof v === "number");
}

function isLog(d: Domain | null | undefined): boolean {
  return !!d && (d.type === "float" || d.type === "int") && d.log;
}

/** One line about the trial under the cursor, or a hint. */
function Readout({ trial, metric, hint, extra }: { trial: Trial | undefined; metric: string; hint: string; extra?: string }) {
  if (!trial) return <div class="plot-foot muted">{hint}</div>;
  return (
    <div class="plot-foot" data-testid="readout">
      <span>
        <strong>#{trial.number}</strong> <StatePill state={trial.state} />{" "}
        <span class="mono">
          {metric} = {trial.value === null ? "—" : fmtNum(trial.value)}
        </span>
        {extra && <span class="muted"> · {extra}</span>}
      </span>
      <span class="muted ellipsis">{Object.entries(trial.params).map(([k, v]) => `${k}=${fmtValue(v)}`).join("  ")}</span>
    </div>
  );
}

function HistoryCard({
  d,
  metric,
  logy,
  canLog,
  logParam,
  byNumber,
  open,
}: {
  d: StudyDetail;
  metric: string;
  logy: boolean;
  canLog: boolean;
  logParam: boolean;
  byNumber: Map<number, Trial>;
  open: (n: number) => void;
}) {
  const [hover, setHover] = useState<number | null>(null);
  const rows: HistoryRow[] = d.history.filter((h) => Number.isFinite(h.value));
  const h = hover !== null ? d.history.find((x) => x.number === hover) : undefined;
  const last = rows[rows.length - 1];
  return (
    <Section
      title="Optimization history"
      id="history"
      right={
        <>
          {last && (
            <span class="muted">
              best <span class="num text">{fmtNum(last.best)}</span> after {plural(rows.length, "complete trial")}
            </span>
          )}
          {canLog && (
            <label class="ctl check" title="A log scale for the metric on every plot of the page">
              <input type="checkbox" checked={logParam} onChange={(e) => setParams({ logy: (e.target as HTMLInputElement).checked ? "1" : null })} data-testid="logy" />
              <span>Log y</span>
            </label>
          )}
        </>
      }
    >
      {rows.length === 0 ? (
        <div class="plot-none">No complete trial yet: the history starts with the first.</div>
      ) : (
        <>
          <HistoryPlot rows={rows} metric={metric} logy={logy} onHover={setHover} onPick={open} />
          <div class="history-legend">
            <span class="legend-item static">
              <span class="hl-dot" /> a complete trial's {metric}
            </span>
            <span class="legend-item static">
              <span class="hl-line" /> best so far
            </span>
          </div>
          <Readout trial={hover !== null ? byNumber.get(hover) : undefined} metric={metric} hint="Hover a point to see its trial; click it to open its run." extra={h ? `best so far ${fmtNum(h.best)}` : undefined} />
        </>
      )}
    </Section>
  );
}

function ImportanceCard({ d }: { d: StudyDetail }) {
  const max = Math.max(0, ...d.importance.map((i) => i.importance)) || 1;
  const complete = d.history.length;
  return (
    <Section
      title="Parameter importance"
      id="importance"
      right={
        <span class="muted small" data-testid="importance-method" title="How much each parameter decides whether a trial lands among the best 10%">
          {d.importance_method}
        </span>
      }
    >
      {d.importance.length === 0 ? (
        <div class="plot-none" data-testid="importance-none">
          {complete < 4 ? `Importance needs 4 complete trials; ${plural(complete, "trial is", "trials are")} complete.` : "No parameter varied among the complete trials."}
        </div>
      ) : (
        <div class="importance" data-testid="importance">
          {d.importance.map((i) => (
            <div class="imp-row" key={i.name} data-param={i.name} data-importance={String(i.importance)} title={domainText(d.params[i.name])}>
              <span class="imp-name mono">{i.name}</span>
              <span class="imp-track">
                <span class="imp-bar" style={{ width: `${Math.max(0.5, (i.importance / max) * 100)}%` }} />
              </span>
              <span class="imp-val num">{(i.importance * 100).toFixed(i.importance < 0.1 ? 1 : 0)}%</span>
            </div>
          ))}
          <p class="muted small imp-note">Shares of the difference between the best 10% of the trials and all of them; they sum to 100%.</p>
        </div>
      )}
      <SearchSpace d={d} />
    </Section>
  );
}

/** Each parameter's domain, as the search was told it. */
function SearchSpace({ d }: { d: StudyDetail }) {
  const names = Object.keys(d.params);
  if (!names.length) return null;
  return (
    <div class="search-space" data-testid="search-space">
      <div class="mini-head">Search space</div>
      <table class="table kv">
        <tbody>
          {names.map((n) => (
            <tr key={n} data-param={n}>
              <td class="key mono">{n}</td>
              <td class="val">
                {d.params[n] ? (
                  <>
                    <span class="badge subtle">{d.params[n]?.type}</span> <span class="mono small">{domainText(d.params[n])}</span>
                  </>
                ) : (
                  <span class="muted">not recorded</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function SlicesCard({ d, names, metric, logy, byNumber, open }: { d: StudyDetail; names: string[]; metric: string; logy: boolean; byNumber: Map<number, Trial>; open: (n: number) => void }) {
  const [hover, setHover] = useState<number | null>(null);
  const [ref, width] = useElementWidth<HTMLDivElement>();
  const complete = d.trials.filter((t) => t.state === "complete" && t.value !== null && Number.isFinite(t.value));
  const axes = useMemo(() => {
    const m = new Map<string, ParamAxis>();
    for (const n of names) m.set(n, paramAxis(d.params[n], d.trials.map((t) => t.params[n]).filter((v) => v !== undefined)));
    return m;
  }, [d, names.join("\u0000")]);
  const ys = complete.map((t) => t.value as number).filter((v) => !logy || v > 0);
  const yRange = padRange(Math.min(...ys), Math.max(...ys), logy);
  const best = d.study.best?.number ?? null;
  const cols = Math.max(1, Math.min(names.length, Math.floor(((width || 1200) + 12) / (300 + 12))));
  return (
    <Section
      title="Slices"
      id="slices"
      right={<span class="muted">{metric} against each parameter · darker dots are later trials · the best is ringed</span>}
    >
      {names.length === 0 ? (
        <div class="plot-none">No trial recorded a parameter.</div>
      ) : complete.length === 0 ? (
        <div class="plot-none">No complete trial yet.</div>
      ) : (
        <>
          <div class="slices" ref={ref} data-testid="slices" style={{ gridTemplateColumns: `repeat(${cols}, minmax(0, 1fr))` }}>
            {names.map((n) => {
              const axis = axes.get(n) as ParamAxis;
              const points: SlicePoint[] = complete
                .filter((t) => t.params[n] !== undefined)
                .map((t) => ({ trial: t.number, x: axis.kind === "cat" ? catLabel(t.params[n]) : (t.params[n] as number), y: t.value as number }));
              return (
                <div class="slice" key={n} data-param={n}>
                  <div class="slice-head">
                    <span class="slice-name mono">{n}</span>
                    <span class="muted small slice-domain" title={domainText(d.params[n])}>
                      {d.params[n] ? domainText(d.params[n]) : axis.kind === "cat" ? "categories" : "values"}
                    </span>
                  </div>
                  <SlicePlot name={n} axis={axis} points={points} yRange={yRange} logy={logy} best={best} onHover={setHover} onPick={open} />
                </div>
              );
            })}
          </div>
          <Readout trial={hover !== null ? byNumber.get(hover) : undefined} metric={metric} hint="Hover a dot to see its trial; click it to open its run." />
        </>
      )}
    </Section>
  );
}

/** The most runs the intermediate-values plot asks curves for (a sweep's
 * trials report none of their own: their runs' metric is drawn). */
const CURVE_RUNS = 600;

function CurvesCard({ d, metric, logy, params, byNumber, open }: { d: StudyDetail; metric: string; logy: boolean; params: URLSearchParams; byNumber: Map<number, Trial> ; open: (n: number) => void }) {
  const [hover, setHover] = useState<number | null>(null);
  const showPruned = params.get("pruned") !== "0";
  const own = d.trials.some((t) => t.intermediate.length > 0);
  const best = d.study.best?.number ?? null;
  // Without reports of their own, the trials' runs' curves of the metric.
  const fromRuns = !own && !!d.study.metric;
  const withRuns = d.trials.filter((t) => t.run_id).slice(-CURVE_RUNS);
  const runCurves = useAsync(
    async (signal) => {
      if (!fromRuns || !d.study.metric || withRuns.length === 0) return null;
      const ids = withRuns.map((t) => t.run_id as string);
      const out = new Map<string, { steps: number[]; values: (number | null)[] }>();
      for (let i = 0; i < ids.length; i += 200) {
        const r = await api.series({ runs: ids.slice(i, i + 200), keys: [d.study.metric], buckets: 200, ts: false }, signal);
        for (const s of r.series) out.set(s.run, { steps: Array.from(s.steps), values: Array.from(s.values, (v) => (Number.isFinite(v) ? v : null)) });
      }
      return out;
    },
    [d.study.id, fromRuns, withRuns.length],
  );
  const kindOf = (t: Trial): Curve["kind"] => (t.number === best ? "best" : t.state === "complete" ? "kept" : t.state === "pruned" ? "pruned" : "other");
  const all: Curve[] = [];
  for (const t of d.trials) {
    if (own) {
      if (!t.intermediate.length) continue;
      all.push({ trial: t.number, kind: kindOf(t), steps: t.intermediate.map((p) => p[0]), values: t.intermediate.map((p) => p[1]) });
    } else {
      const c = t.run_id ? runCurves.data?.get(t.run_id) : undefined;
      if (c && c.steps.length) all.push({ trial: t.number, kind: kindOf(t), steps: c.steps, values: c.values });
    }
  }
  const pruned = all.filter((c) => c.kind === "pruned").length;
  const curves = showPruned ? all : all.filter((c) => c.kind !== "pruned");
  const hovered = hover !== null ? byNumber.get(hover) : undefined;
  return (
    <Section
      title="Intermediate values"
      id="intermediate"
      right={
        <>
          <span class="muted">{own ? "what each trial reported on the way (trial.report)" : `each trial's run's ${metric} by step`}</span>
          {pruned > 0 && (
            <label class="ctl check" title="Draw the pruned trials' curves">
              <input type="checkbox" checked={showPruned} onChange={(e) => setParams({ pruned: (e.target as HTMLInputElement).checked ? null : "0" })} data-testid="show-pruned" />
              <span>Show pruned ({pruned})</span>
            </label>
          )}
        </>
      }
    >
      {runCurves.error ? (
        <ErrorBox error={runCurves.error} retry={runCurves.reload} />
      ) : fromRuns && runCurves.loading && !runCurves.data ? (
        <Loading label="Loading the trials' curves…" />
      ) : all.length === 0 ? (
        <div class="plot-none" data-testid="curves-none">
          {d.study.metric ? `No trial reported ${metric} on the way.` : "This sweep names no metric to draw."}
        </div>
      ) : (
        <>
          <CurvesPlot curves={curves} metric={metric} logy={logy} onHover={setHover} onPick={open} />
          <div class="history-legend">
            <span class="legend-item static">
              <span class="cv-line best" /> best trial
            </span>
            <span class="legend-item static">
              <span class="cv-line kept" /> complete
            </span>
            {pruned > 0 && (
              <span class={`legend-item static ${showPruned ? "" : "off"}`}>
                <span class="cv-line pruned" /> pruned
              </span>
            )}
            {all.some((c) => c.kind === "other") && (
              <span class="legend-item static">
                <span class="cv-line other" /> failed, crashed or running
              </span>
            )}
          </div>
          <Readout trial={hovered} metric={metric} hint="Hover a curve to see its trial; click it to open its run." />
        </>
      )}
    </Section>
  );
}

/** Rows the trials table shows before "Show all". */
const FIRST_ROWS = 200;

function TrialsCard({ project, d, names, params }: { project: string; d: StudyDetail; names: string[]; params: URLSearchParams }) {
  const sort = params.get("tsort") ?? "number";
  const [all, setAll] = useState(false);
  const rows = useMemo(() => sortTrials(d.trials, sort), [d, sort]);
  const shown = all ? rows : rows.slice(0, FIRST_ROWS);
  const best = d.study.best?.number ?? null;
  const sortBy = (key: string) => {
    const next = sort === key ? `-${key}` : sort === `-${key}` ? "number" : key;
    setParams({ tsort: next === "number" ? null : next });
  };
  const th = (k: string, label: string, num = false, title?: string) => {
    const on = sort === k || sort === `-${k}`;
    return (
      <th key={k} class={`${num ? "num" : ""} sortable ${on ? "sorted" : ""}`} title={title} aria-sort={on ? (sort.startsWith("-") ? "descending" : "ascending") : undefined}>
        <button class="th-btn" onClick={() => sortBy(k)}>
          {label}
          {on && <span class="sort-ind">{sort.startsWith("-") ? "▾" : "▴"}</span>}
        </button>
      </th>
    );
  };
  return (
    <Section
      title="Trials"
      id="trials"
      right={
        <span class="muted">
          {d.trials_total > d.trials.length ? `the newest ${fmtNum(d.trials.length)} of ` : ""}
          {plural(d.trials_total, "trial")}
        </span>
      }
    >
      {d.trials.length === 0 ? (
        <div class="plot-none">No trial has started yet.</div>
      ) : (
        <div class="hscroll trials-wrap">
          <table class="table trials-table" data-testid="trials">
            <thead>
              <tr>
                {th("number", "#", true)}
                {th("state", "State")}
                {th("value", d.study.metric ?? "Value", true, d.study.direction)}
                {names.map((n) => th(`p.${n}`, n, numeric(d.params[n], d.trials.map((t) => t.params[n])), domainText(d.params[n])))}
                <th>Run</th>
                <th class="num">Duration</th>
                <th>Note</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((t) => (
                <tr key={t.number} data-trial={t.number} data-state={t.state} class={t.number === best ? "best-row" : ""}>
                  <td class="num mono">{t.number}</td>
                  <td>
                    <StatePill state={t.state} />
                    {t.number === best && (
                      <span class="badge ok best-badge" data-testid="best-badge">
                        best
                      </span>
                    )}
                  </td>
                  <td class="num" data-col="value">
                    {t.value === null ? <span class="muted">—</span> : fmtNum(t.value)}
                  </td>
                  {names.map((n) => (
                    <td key={n} class={typeof t.params[n] === "number" ? "num" : ""} data-param={n}>
                      {t.params[n] === undefined ? <span class="muted">—</span> : fmtValue(t.params[n])}
                    </td>
                  ))}
                  <td>{t.run_id ? <a href={runPath(project, t.run_id)} class="mono">{t.run_id}</a> : <span class="muted">—</span>}</td>
                  <td class="num muted">{t.started_ms ? fmtDuration((t.ended_ms ?? Date.now()) - t.started_ms) : ""}</td>
                  <td class="note-cell">
                    {t.retry_of !== null && <span class="badge subtle">retry of #{t.retry_of}</span>} {t.note && <span class="muted">{t.note}</span>}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {rows.length > shown.length && (
            <div class="table-more">
              <button class="btn btn-sm" onClick={() => setAll(true)}>
                Show all {fmtNum(rows.length)} trials
              </button>
            </div>
          )}
        </div>
      )}
    </Section>
  );
}
