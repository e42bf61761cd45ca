// A replay beside the run it replays (issue 12), at
// /p/<project>/replay/<original>/<replay>: the stored check (a verdict per
// metric, the deviations, the final values, the tolerance), each metric's
// two curves overlaid with the divergence step marked, and what differs
// between the two runs (environment, code, config, command). Loaded on
// first visit (its own chunk).
import type { ComponentChildren } from "preact";
import { useMemo } from "preact/hooks";
import type { ConfigValue, ReplayCheck, ReplayMetricCheck, RunDetail, RunReplays } from "../api";
import { ApiError, api } from "../api";
import { DASHES, fmtDate, fmtNum, fmtRelative, fmtValue, plural, runColor } from "../format";
import { projectPath, replayPath, runPath } from "../router";
import type { RunDifferences } from "../replay";
import { divergenceStep, runDifferences, toleranceText, verdictText } from "../replay";
import type { ChartRun, StepMark } from "./Charts";
import { ChartControls, ChartPanel, chartSettings, sectionColumns } from "./Charts";
import { Empty, ErrorBox, Loading, Section, StatusPill, useAsync, useElementWidth } from "./common";
import { VerdictBadge } from "./Replays";
import "./replay.css";

/** The replay's line style: dashed over the original's solid line, so a
 * curve that reproduced shows as both. */
const REPLAY_DASH = DASHES[0];

function notFound(e: Error | undefined): boolean {
  return e instanceof ApiError && e.status === 404;
}

export function ReplayPage({ project, original, replay, params }: { project: string; original: string; replay: string; params: URLSearchParams }) {
  const orig = useAsync((signal) => api.run(original, signal), [original]);
  const rep = useAsync((signal) => api.run(replay, signal), [replay]);
  const links = useAsync((signal) => api.runReplays(replay, signal), [replay]);

  const back = (
    <a class="btn" href={projectPath(project)} data-testid="back-to-project">
      ← The runs of {project}
    </a>
  );
  if (original === replay)
    return (
      <div class="page">
        <Empty title="A run compared with itself">
          <p>
            This view puts a replay beside the run it replays; both ids here are <span class="mono">{original}</span>.
          </p>
          <a class="btn" href={runPath(project, original)}>
            The run's page
          </a>
        </Empty>
      </div>
    );
  // The replay is what the view is about: without it there is nothing to show.
  if (notFound(rep.error))
    return (
      <div class="page">
        <Empty title={`No run ${replay}`}>
          <p>
            No run has this id, so there is no replay to show{notFound(orig.error) ? <> (and no run {original} either)</> : null}: it may be mistyped, deleted for good, or the link may come
            from another store.
          </p>
          {orig.data ? (
            <a class="btn" href={runPath(orig.data.project, orig.data.id)} data-testid="to-original">
              ← {orig.data.name}, the original
            </a>
          ) : (
            back
          )}
        </Empty>
      </div>
    );
  const err = rep.error ?? (notFound(orig.error) ? undefined : orig.error) ?? links.error;
  if (err)
    return (
      <div class="page">
        <ErrorBox
          error={err}
          retry={() => {
            rep.reload();
            orig.reload();
            links.reload();
          }}
        />
      </div>
    );
  if (!rep.data || !links.data || (!orig.data && !orig.error)) return <div class="page"><Loading label="Loading the replay…" /></div>;
  return <ReplayBody project={project} originalId={original} o={orig.data ?? null} r={rep.data} links={links.data} params={params} />;
}

function ReplayBody({ project, originalId, o, r, links, params }: { project: string; originalId: string; o: RunDetail | null; r: RunDetail; links: RunReplays; params: URLSearchParams }) {
  // The stored check, when it is this pair's (check-replay may have
  // compared the replay with another run since).
  const check = links.check && links.check.original === originalId ? links.check : null;
  const of = links.replay_of?.id ?? null;
  const set = r.kv_tags?.["labbook.replay_set"] ?? null;
  const drift = r.environment?.replay?.drift ?? [];
  const rebuilt = r.environment?.replay?.dir;
  return (
    <div class="page replay-page" data-original={originalId} data-replay={r.id}>
      <div class="crumbs">
        <a href={projectPath(project)}>{project}</a>
        <span class="muted">/</span>
        {o ? <a href={runPath(o.project, o.id)}>{o.name}</a> : <span class="mono">{originalId}</span>}
        <span class="muted">/</span>
        <span>replay {r.name}</span>
      </div>
      <div class="run-head">
        <div class="run-title replay-title">
          <h1>Replay check</h1>
          <VerdictBadge verdict={check?.verdict ?? null} testid="overall-verdict" />
        </div>
        <div class="run-actions">
          {o && (
            <a class="btn btn-sm" href={`${projectPath(project, "compare")}?runs=${encodeURIComponent(o.id)},${encodeURIComponent(r.id)}&base=${encodeURIComponent(o.id)}`}>
              Compare…
            </a>
          )}
        </div>
      </div>
      <div class="replay-pair" data-testid="replay-pair">
        <PairRun role="Original" run={o} id={originalId} dash={null} testid="pair-original" />
        <span class="pair-arrow" aria-hidden="true">
          →
        </span>
        <PairRun role="Replay" run={r} id={r.id} dash={REPLAY_DASH} testid="pair-replay" />
        <dl class="facts pair-facts">
          {set && (
            <div class="fact">
              <dt>What if</dt>
              <dd>
                <code data-testid="replay-set">{set}</code>
              </dd>
            </div>
          )}
          {check && (
            <div class="fact">
              <dt>Tolerance</dt>
              <dd class="mono" data-testid="tolerance">
                {toleranceText(check.tolerance)}
              </dd>
            </div>
          )}
          {check && (
            <div class="fact">
              <dt>Checked</dt>
              <dd title={fmtDate(check.checked_ms)}>{fmtRelative(check.checked_ms)}</dd>
            </div>
          )}
        </dl>
      </div>
      {!o && (
        <div class="notice warn" data-testid="original-missing">
          <strong>The original run {originalId} is no longer in the store</strong> (deleted for good). Its curves and environment are gone; {check ? "the check stored with the replay is shown as it was made." : "there is nothing to compare the replay with."}
        </div>
      )}
      {o?.deleted && (
        <div class="notice" data-testid="original-deleted">
          The original run <a href={runPath(o.project, o.id)}>{o.name}</a> is deleted: <code>labbook restore {o.id}</code> brings it back.
        </div>
      )}
      {of !== originalId && (
        <div class="notice" data-testid="not-a-replay">
          {of ? (
            <>
              {r.name} is a replay of <a href={replayPath(project, of, r.id)}>{of}</a>, not of {o?.name ?? originalId}: the two are compared as any two runs.
            </>
          ) : (
            <>
              {r.name} is not a replay (it has no <code>labbook.replay_of</code> tag): the two are compared as any two runs.
            </>
          )}
        </div>
      )}
      <div class="stack">
        {check ? <VerdictTable check={check} /> : <NoCheck original={originalId} replay={r.id} other={links.check?.original ?? null} />}
        <Curves o={o} originalId={originalId} r={r} check={check} params={params} />
        {o ? <Differences o={o} r={r} /> : null}
        {drift.length > 0 && (
          <Section title="Drift noticed at replay time" right={<span class="muted num">{drift.length}</span>}>
            <ul class="drift-list" data-testid="replay-drift">
              {drift.map((d) => (
                <li key={d}>{d}</li>
              ))}
            </ul>
          </Section>
        )}
        {rebuilt && (
          <p class="muted small replay-dir">
            The replay's code was rebuilt in <span class="mono">{rebuilt}</span>.
          </p>
        )}
      </div>
    </div>
  );
}

function PairRun({ role, run, id, dash, testid }: { role: string; run: RunDetail | null; id: string; dash: number[] | null; testid: string }) {
  return (
    <div class="pair-run" data-testid={testid} data-run={id}>
      <div class="pair-role">{role}</div>
      <div class="pair-name">
        <LineSwatch color={runColor(id)} dash={dash} />
        {run ? <a href={runPath(run.project, run.id)}>{run.name}</a> : <span class="muted">not in the store</span>}
        {run && <StatusPill status={run.status} />}
      </div>
      <div class="mono muted small">
        {id}
        {run && <span title={fmtDate(run.created_ms)}> · {fmtRelative(run.created_ms)}</span>}
      </div>
    </div>
  );
}

/** A short line in a run's color, dashed as its curves are drawn. */
function LineSwatch({ color, dash }: { color: string; dash: number[] | null }) {
  return (
    <svg class="line-swatch" width="22" height="8" viewBox="0 0 22 8" aria-hidden="true">
      <line x1="1" y1="4" x2="21" y2="4" stroke={color} stroke-width="2.5" stroke-linecap="butt" stroke-dasharray={dash ? dash.join(" ") : undefined} />
    </svg>
  );
}

/** A deviation or final value: null when it was not finite. */
function Value({ v }: { v: number | null | undefined }) {
  if (v === null || v === undefined) return <span class="muted" title="Not a finite number (NaN or ±∞), or not logged">—</span>;
  return <>{fmtNum(v)}</>;
}

function VerdictTable({ check }: { check: ReplayCheck }) {
  const passed = check.metrics.filter((m) => m.verdict.state === "reproduced" || m.verdict.state === "within_tolerance").length;
  return (
    <Section
      title="Verdict per metric"
      id="verdicts"
      right={
        <span class="muted">
          {passed} of {plural(check.metrics.length, "metric")} reproduced · tolerance <span class="mono">{toleranceText(check.tolerance)}</span>
        </span>
      }
    >
      {check.metrics.length === 0 ? (
        <p class="muted">Neither run logged a metric to compare (system metrics are left out).</p>
      ) : (
        <div class="hscroll">
          <table class="table verdict-table" data-testid="verdict-table">
            <thead>
              <tr>
                <th>Metric</th>
                <th>Verdict</th>
                <th class="num">Steps compared</th>
                <th class="num">Max abs deviation</th>
                <th class="num">Max rel deviation</th>
                <th class="num">Final original</th>
                <th class="num">Final replay</th>
              </tr>
            </thead>
            <tbody>
              {check.metrics.map((m) => (
                <VerdictRow key={m.key} m={m} />
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}

function VerdictRow({ m }: { m: ReplayMetricCheck }) {
  const step = divergenceStep(m.verdict);
  const [a, b] = m.at_divergence ?? [null, null];
  return (
    <tr data-metric={m.key} data-verdict={m.verdict.state}>
      <td class="mono key" data-col="metric">
        {m.key}
      </td>
      <td data-col="verdict">
        <VerdictBadge verdict={m.verdict} />
        {step !== null && m.at_divergence && (
          <div class="muted small divergence-values" data-testid="at-divergence">
            at step {fmtNum(step)}: <Value v={a} /> → <Value v={b} />
          </div>
        )}
      </td>
      <td class="num" data-col="compared">
        {fmtNum(m.compared)}
      </td>
      <td class="num" data-col="max_abs_dev">
        <Value v={m.max_abs_dev} />
      </td>
      <td class="num" data-col="max_rel_dev">
        <Value v={m.max_rel_dev} />
      </td>
      <td class="num" data-col="final_original">
        <Value v={m.final_original} />
        {m.last_step_original !== null && <div class="muted small">step {fmtNum(m.last_step_original)}</div>}
      </td>
      <td class={`num ${m.final_original !== m.final_replay ? "changed" : ""}`} data-col="final_replay">
        <Value v={m.final_replay} />
        {m.last_step_replay !== null && <div class="muted small">step {fmtNum(m.last_step_replay)}</div>}
      </td>
    </tr>
  );
}

function NoCheck({ original, replay, other }: { original: string; replay: string; other: string | null }) {
  return (
    <Section title="Verdict per metric" id="verdicts">
      <div class="no-check" data-testid="no-check">
        <div class="empty-title">No check stored for these two runs</div>
        <p class="muted">
          {other ? (
            <>
              The replay's stored check compares it with <span class="mono">{other}</span>, not with <span class="mono">{original}</span>.{" "}
            </>
          ) : (
            <>The replay ran without <code>--check</code>. </>
          )}
          Compare the two runs' curves, a verdict per metric, with:
        </p>
        <pre class="mono snippet" data-testid="check-command">{`labbook check-replay ${original} ${replay}`}</pre>
      </div>
    </Section>
  );
}

/** Each metric's two curves, the original solid and the replay dashed over
 * it, the divergence step marked. */
function Curves({ o, originalId, r, check, params }: { o: RunDetail | null; originalId: string; r: RunDetail; check: ReplayCheck | null; params: URLSearchParams }) {
  const settings = chartSettings(params);
  const [gridRef, gridW] = useElementWidth<HTMLDivElement>();
  const keys = useMemo(() => {
    if (check) return check.metrics.map((m) => m.key);
    const all = new Set([...(o?.metric_keys ?? []).map((k) => k.key), ...Object.keys(o?.metrics ?? {}), ...r.metric_keys.map((k) => k.key), ...Object.keys(r.metrics)]);
    return [...all].filter((k) => !k.startsWith("sys/")).sort();
  }, [check, o?.id, r.id]);
  const runs = useMemo<ChartRun[]>(() => {
    const out: ChartRun[] = [];
    // The original wider, under the replay: where the two coincide both show.
    if (o) out.push({ id: o.id, name: `${o.name} (original)`, created_ms: o.created_ms, color: runColor(o.id), dash: null, width: 3, metrics: o.metrics });
    out.push({ id: r.id, name: `${r.name} (replay)`, created_ms: r.created_ms, color: runColor(r.id), dash: REPLAY_DASH, metrics: r.metrics });
    return out;
  }, [o?.id, r.id]);
  const marks = useMemo(() => {
    const m = new Map<string, StepMark[]>();
    for (const c of check?.metrics ?? []) {
      const step = divergenceStep(c.verdict);
      if (step !== null) m.set(c.key, [{ step, label: verdictText(c.verdict) }]);
    }
    return m;
  }, [check]);
  if (!keys.length)
    return (
      <Section title="Curves">
        <p class="muted">Neither run logged a metric.</p>
      </Section>
    );
  const cols = sectionColumns(keys.length, gridW || Math.max(320, window.innerWidth - 70), 420);
  const basis = `calc((100% - ${(cols - 1) * 10}px) / ${cols})`;
  return (
    <Section
      title="Curves"
      id="curves"
      right={
        <span class="replay-legend" data-testid="replay-legend">
          {runs.map((x) => (
            <span class="replay-legend-item" key={x.id}>
              <LineSwatch color={x.color} dash={x.dash ?? null} />
              {x.name}
            </span>
          ))}
        </span>
      }
    >
      <ChartControls settings={settings} hasZoom={!!settings.zoom} />
      {settings.x !== "step" && marks.size > 0 && <p class="muted small">The divergence step is marked on a step axis only.</p>}
      <div class="panels replay-panels" ref={gridRef} data-cols={cols}>
        {keys.map((k) => (
          <ChartPanel key={k} metric={k} runs={runs} settings={settings} marks={marks.get(k)} basis={basis} />
        ))}
      </div>
      {!o && <p class="muted small">Only the replay's curves: the original <span class="mono">{originalId}</span> is gone.</p>}
    </Section>
  );
}

// ---------------------------------------------------------------------------
// What differs

function Same({ value, testid }: { value: ComponentChildren; testid?: string }) {
  return (
    <td colSpan={2} class="same-cell" data-testid={testid}>
      <span class="same-val">{value}</span>
      <span class="no-diff">no differences</span>
    </td>
  );
}

/** An aspect made of keys (config, packages, variables): one row per key
 * that differs, the key beside each value; one row saying so when none do. */
function ChangeRows({ aspect, label, changes, same }: { aspect: string; label: string; changes: { key: string; original: ComponentChildren; replay: ComponentChildren }[]; same: ComponentChildren }) {
  if (!changes.length)
    return (
      <tr data-aspect={aspect} data-same="1">
        <td class="key">{label}</td>
        <Same value={same} />
      </tr>
    );
  return (
    <>
      {changes.map((c, i) => (
        <tr key={c.key} data-aspect={aspect} data-same="0" data-key={c.key} class={i > 0 ? "cont" : ""}>
          {i === 0 && (
            <td class="key" rowSpan={changes.length}>
              {label} <span class="muted num">{changes.length}</span>
            </td>
          )}
          <td class="was mono" data-col="original">
            <span class="change-key">{c.key}</span>
            <span class="change-eq"> = </span>
            <span class="change-val">{c.original}</span>
          </td>
          <td class="now mono" data-col="replay">
            <span class="change-key">{c.key}</span>
            <span class="change-eq"> = </span>
            <span class="change-val">{c.replay}</span>
          </td>
        </tr>
      ))}
    </>
  );
}

function envVarCount(r: RunDetail): number {
  return Object.keys(r.environment?.env_vars ?? {}).length;
}

function cfg(v: ConfigValue | undefined): ComponentChildren {
  return v === undefined ? <span class="muted">unset</span> : fmtValue(v);
}

function Differences({ o, r }: { o: RunDetail; r: RunDetail }) {
  const d: RunDifferences = useMemo(() => runDifferences(o, r), [o, r]);
  const differing = d.aspects.filter((a) => !a.same).length + (d.packages.length ? 1 : 0) + (d.config.length ? 1 : 0) + (d.envVars.length ? 1 : 0);
  const missing = !d.recorded.original || !d.recorded.replay;
  return (
    <Section
      title="What differs"
      id="differences"
      right={<span class="muted" data-testid="differences-count">{differing === 0 ? "no differences" : plural(differing, "difference")}</span>}
    >
      {missing && (
        <p class="muted">
          {!d.recorded.original && !d.recorded.replay ? "Neither run" : !d.recorded.original ? "The original" : "The replay"} recorded no environment: what it ran with is unknown.
        </p>
      )}
      <table class="table diff-table" data-testid="differences">
        <thead>
          <tr>
            <th />
            <th>Original</th>
            <th>Replay</th>
          </tr>
        </thead>
        <tbody>
          <ChangeRows
            aspect="config"
            label="Config"
            changes={d.config.map((c) => ({ key: c.key, original: cfg(c.original), replay: cfg(c.replay) }))}
            same={<span class="muted">{plural(Object.keys(o.config).length, "key")}</span>}
          />
          {d.aspects.map((a) => (
            <tr key={a.key} data-aspect={a.key} data-same={a.same ? "1" : "0"}>
              <td class="key">{a.label}</td>
              {a.same ? (
                <Same value={<span class={a.key === "python" || a.key === "host" || a.key === "gpus" || a.key === "tree" ? "" : "mono"}>{a.original}</span>} />
              ) : (
                <>
                  <td class={`was ${a.key === "command" || a.key === "commit" || a.key === "code" ? "mono" : ""}`} data-col="original">
                    {a.original}
                  </td>
                  <td class={`now ${a.key === "command" || a.key === "commit" || a.key === "code" ? "mono" : ""}`} data-col="replay">
                    {a.replay}
                  </td>
                </>
              )}
            </tr>
          ))}
          <ChangeRows
            aspect="packages"
            label="Packages"
            changes={d.packages.map((p) => ({ key: p.name, original: p.original ?? <span class="muted">not installed</span>, replay: p.replay ?? <span class="muted">not installed</span> }))}
            same={<span class="muted">{d.packageCount ? `${plural(d.packageCount, "package")}, the same versions` : "none recorded"}</span>}
          />
          <ChangeRows
            aspect="env_vars"
            label="Environment variables"
            changes={d.envVars.map((v) => ({ key: v.name, original: v.original ?? <span class="muted">unset</span>, replay: v.replay ?? <span class="muted">unset</span> }))}
            same={<span class="muted">{envVarCount(o) ? `${plural(envVarCount(o), "variable")} recorded` : "none recorded"}</span>}
          />
        </tbody>
      </table>
    </Section>
  );
}
