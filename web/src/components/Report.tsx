// The morning report (issue 13) at /p/<project>/report: what ran in a
// window (since 18:00 yesterday by a click), grouped by what it was for
// (its sweep or study, its plan, its why), each group's best run against
// the project's baseline with a sparkline of its curve, the failures with
// their last lines, what still runs, and the overnight queue. The same
// report as `labbook report`. Loaded on first visit (its own chunk).
import { useEffect, useMemo, useState } from "preact/hooks";
import type { QueueJob, Report, ReportGroup, RunBrief } from "../api";
import { api } from "../api";
import { fmtDate, fmtDelta, fmtDuration, fmtNum, fmtPct, fmtRelative, plural } from "../format";
import { runPath, setParams, sweepPath } from "../router";
import type { Preset } from "../search";
import { PRESETS, arrow, commandText, fromLocalInput, reportWindow, toLocalInput, windowText } from "../search";
import { Empty, ErrorBox, Loading, Section, StatusPill, useAsync } from "./common";
import { Sparkline } from "./SearchPlots";
import { KindBadge, StatePill } from "./Sweeps";
import "./search.css";

/** The report's counts in reading order, and how each is colored. */
const COUNTS: { key: string; label: string; tone: string }[] = [
  { key: "started", label: "started", tone: "plain" },
  { key: "finished", label: "finished", tone: "good" },
  { key: "failed", label: "failed", tone: "bad" },
  { key: "crashed", label: "crashed", tone: "warn" },
  { key: "killed", label: "killed", tone: "kill" },
  { key: "pruned", label: "pruned", tone: "muted" },
  { key: "running", label: "running", tone: "info" },
];

export function ReportPage({ project, params }: { project: string; params: URLSearchParams }) {
  // Presets are relative to when the page asked: a reload or Refresh moves them.
  const [now, setNow] = useState(() => Date.now());
  const key = params.toString();
  const win = useMemo(() => reportWindow(params, now), [key, now]);
  const metric = params.get("metric") ?? "";
  const report = useAsync((signal) => api.report(project, { since: win.since, until: win.until, metric: metric || undefined }, signal), [project, win.since, win.until, metric]);
  const queue = useAsync((signal) => api.queue(project, signal), [project, now]);
  const refresh = () => setNow(Date.now());
  const pick = (p: Preset) => {
    setParams({ w: p === "24h" ? null : p, since: null, until: null }, { push: true });
    refresh();
  };
  const r = report.data;
  return (
    <div class="page report-page">
      <div class="page-head">
        <h1>Morning report</h1>
        <span class="muted" data-testid="report-window">
          {windowText(win.since, win.until)}
        </span>
        <button class="btn btn-sm push-right" onClick={refresh} title="Ask again (a preset window moves to now)" data-testid="refresh">
          Refresh
        </button>
      </div>
      <div class="toolbar wrap report-toolbar">
        <div class="seg" role="group" aria-label="Window" data-testid="presets">
          {PRESETS.map((p) => (
            <button key={p.id} class={`seg-btn ${win.preset === p.id ? "active" : ""}`} onClick={() => pick(p.id)} data-preset={p.id} aria-pressed={win.preset === p.id}>
              {p.label}
            </button>
          ))}
        </div>
        <TimeInput label="Since" ms={win.since} testid="since" onCommit={(ms) => setParams({ since: String(ms), until: win.preset ? null : params.get("until"), w: null }, { push: true })} />
        <TimeInput label="Until" ms={win.until} testid="until" onCommit={(ms) => setParams({ since: String(win.since), until: String(ms), w: null }, { push: true })} />
        <MetricInput value={metric} />
      </div>
      {report.error ? (
        <ErrorBox error={report.error} retry={report.reload} />
      ) : !r ? (
        <Loading label="Assembling the report…" />
      ) : (
        <ReportBody project={project} r={r} />
      )}
      <QueueCard project={project} jobs={queue.data?.jobs} error={queue.error} retry={queue.reload} left={r?.queue_left.length ?? null} />
    </div>
  );
}

function TimeInput({ label, ms, testid, onCommit }: { label: string; ms: number; testid: string; onCommit: (ms: number) => void }) {
  const [v, setV] = useState(toLocalInput(ms));
  useEffect(() => setV(toLocalInput(ms)), [ms]);
  const commit = () => {
    const t = fromLocalInput(v);
    if (t !== null && toLocalInput(t) !== toLocalInput(ms)) onCommit(t);
  };
  return (
    <label class="ctl">
      <span>{label}</span>
      <input
        type="datetime-local"
        class="input input-sm"
        value={v}
        data-testid={testid}
        onInput={(e) => setV((e.target as HTMLInputElement).value)}
        onChange={commit}
        onKeyDown={(e) => e.key === "Enter" && commit()}
      />
    </label>
  );
}

function MetricInput({ value }: { value: string }) {
  const [v, setV] = useState(value);
  useEffect(() => setV(value), [value]);
  const commit = () => v.trim() !== value && setParams({ metric: v.trim() || null }, { push: true });
  return (
    <label class="ctl" title="The headline metric of groups without their own (NAME or NAME:max); guessed from the runs by default">
      <span>Metric</span>
      <input
        class="input input-sm metric-input"
        placeholder="guessed"
        value={v}
        data-testid="metric"
        onInput={(e) => setV((e.target as HTMLInputElement).value)}
        onBlur={commit}
        onKeyDown={(e) => e.key === "Enter" && commit()}
      />
    </label>
  );
}

function ReportBody({ project, r }: { project: string; r: Report }) {
  const started = r.counts.started ?? 0;
  const baselineId = r.baseline?.id ?? null;
  // The baseline's own value: the groups' comparisons hold it, by metric.
  const baseValues = new Map<string, number>();
  for (const g of r.groups) if (g.metric && g.baseline_value !== null) baseValues.set(g.metric.name, g.baseline_value);
  return (
    <>
      <div class="summary-chips" data-testid="summary">
        {COUNTS.map((c) => {
          const n = r.counts[c.key] ?? 0;
          return (
            <div key={c.key} class={`sum-chip tone-${c.tone} ${n ? "" : "zero"}`} data-count={c.key} data-n={n}>
              <span class="sum-n num">{fmtNum(n)}</span>
              <span class="sum-label">{c.label}</span>
            </div>
          );
        })}
        <div class="sum-chip tone-plain" data-count="gpu_hours" title="GPU-hours of the window's runs (GPUs each saw × its time in the window)">
          <span class="sum-n num">{r.gpu_hours < 10 ? r.gpu_hours.toFixed(1) : fmtNum(Math.round(r.gpu_hours))}</span>
          <span class="sum-label">GPU-hours</span>
        </div>
        <div class={`sum-chip tone-plain ${r.queue_left.length ? "" : "zero"}`} data-count="queue_left">
          <span class="sum-n num">{fmtNum(r.queue_left.length)}</span>
          <span class="sum-label">left in the queue</span>
        </div>
      </div>
      <div class="baseline-line" data-testid="baseline">
        {r.baseline ? (
          <>
            <span class="badge subtle">baseline</span>
            <a href={runPath(r.baseline.project, r.baseline.id)}>{r.baseline.name}</a>
            <span class="mono muted">{r.baseline.id}</span>
            {[...baseValues].map(([m, v]) => (
              <span key={m} class="muted">
                · <span class="mono">{m}</span> <span class="num text">{fmtNum(v)}</span>
              </span>
            ))}
            <span class="muted">· each group's best is compared with it</span>
          </>
        ) : (
          <span class="muted">
            No baseline: <code>labbook baseline set RUN</code> names the run every group's best is compared with.
          </span>
        )}
      </div>
      {started === 0 && r.groups.length === 0 ? (
        <div class="card">
          <Empty title="Nothing ran in this window">
            <p>No run of {project} started or ended between {fmtDate(r.since_ms)} and {fmtDate(r.until_ms)}. Try a wider window.</p>
          </Empty>
        </div>
      ) : (
        <div class="report-groups" data-testid="groups">
          {ordered(r.groups).map((g) => (
            <GroupCard key={`${g.kind}:${g.id ?? g.title}`} project={project} g={g} baselineId={baselineId} failure={r.failures.find((f) => f.group === g.title)?.last_lines ?? []} />
          ))}
        </div>
      )}
      {r.failures.length > 0 && (
        <Section title="Failures" id="failures" right={<span class="muted">{plural(r.failures.length, "run")} failed or crashed · the last lines each wrote</span>}>
          <div class="failures" data-testid="failures">
            {r.failures.map((f) => (
              <div class="failure" key={f.run.id} data-run={f.run.id}>
                <div class="failure-head">
                  <StatusPill status={f.run.status} />
                  <a href={runPath(f.run.project, f.run.id)} class="failure-run">
                    {f.run.name}
                  </a>
                  <span class="mono muted">{f.run.id}</span>
                  <span class="muted ellipsis" title={f.group}>
                    · {f.group}
                  </span>
                  <span class="muted push-right" title={fmtDate(f.run.ended_ms ?? f.run.created_ms)}>
                    {fmtRelative(f.run.ended_ms ?? f.run.created_ms)}
                  </span>
                </div>
                {f.last_lines.length ? (
                  <pre class="last-lines" data-testid="last-lines">
                    <code>{f.last_lines.join("\n")}</code>
                  </pre>
                ) : (
                  <div class="muted small">It wrote nothing.</div>
                )}
              </div>
            ))}
          </div>
        </Section>
      )}
      {r.running.length > 0 && (
        <Section title="Still running" id="running" right={<span class="muted">{plural(r.running.length, "run")}</span>}>
          <ul class="brief-list" data-testid="running">
            {r.running.map((b) => (
              <li key={b.id}>
                <StatusPill status={b.status} />
                <a href={runPath(b.project, b.id)}>{b.name}</a>
                <span class="mono muted">{b.id}</span>
                <span class="muted push-right" title={fmtDate(b.created_ms)}>
                  started {fmtRelative(b.created_ms)}
                </span>
              </li>
            ))}
          </ul>
        </Section>
      )}
    </>
  );
}

/** The searches first, then the groups by reason, then the runs that gave
 * none; the server's order within each. */
function ordered(groups: ReportGroup[]): ReportGroup[] {
  const rank = (g: ReportGroup) => (g.kind === "sweep" || g.kind === "study" ? 0 : g.kind === "why" ? 1 : 2);
  return groups.map((g, i) => ({ g, i })).sort((a, b) => rank(a.g) - rank(b.g) || a.i - b.i).map((x) => x.g);
}

function GroupCard({ project, g, baselineId, failure }: { project: string; g: ReportGroup; baselineId: string | null; failure: string[] }) {
  const isBaseline = !!g.best && g.best.id === baselineId;
  const tone = isBaseline || g.better_than_baseline === null ? "plain" : g.better_than_baseline ? "good" : "bad";
  const statuses = Object.entries(g.counts).sort((a, b) => b[1] - a[1]);
  const total = statuses.reduce((a, [, n]) => a + n, 0);
  const why = g.why && g.why !== g.title ? g.why : null;
  return (
    <article class={`card group-card tone-${tone}`} data-kind={g.kind} data-group={g.title} data-testid="group">
      <header class="group-head">
        <div class="group-title-line">
          <KindBadge kind={g.kind === "none" ? "no reason" : g.kind} />
          {g.id && (g.kind === "sweep" || g.kind === "study") ? (
            <a class="group-title" href={sweepPath(project, g.id)} data-testid="group-title">
              {g.title}
            </a>
          ) : (
            <span class={`group-title ${g.kind === "none" ? "muted" : ""}`} data-testid="group-title">
              {g.title}
            </span>
          )}
        </div>
        <div class="group-counts">
          {statuses.map(([s, n]) => (
            <span key={s} class={`count-chip st-${s}`} data-status={s} title={`${n} ${s}`}>
              <span class="dot" />
              <span class="num">{fmtNum(n)}</span> {s}
            </span>
          ))}
        </div>
      </header>
      {(why || g.plan) && (
        <div class="group-why">
          {why && <span>{why}</span>}
          {g.plan && (
            <span class="badge subtle" title="The queue plan its runs came from">
              plan {g.plan}
            </span>
          )}
        </div>
      )}
      <div class="group-body">
        <div class="group-best">
          {g.best && g.metric ? (
            <>
              <div class="gb-label">
                Best run · <span class="mono">{g.metric.name}</span> {arrow(g.metric.goal)}
              </div>
              <div class="gb-line">
                <span class="gb-value num" data-testid="best-value">
                  {g.best.value === null ? "—" : fmtNum(g.best.value)}
                </span>
                <a href={runPath(g.best.project, g.best.id)} class="gb-run" data-testid="best-run">
                  {g.best.name}
                </a>
              </div>
              <VsBaseline g={g} isBaseline={isBaseline} />
            </>
          ) : (
            <div class="gb-none muted">
              {total > 0 && (g.counts.failed ?? 0) + (g.counts.crashed ?? 0) === total ? (
                <>
                  <div>{total === 1 ? `Its run ${g.counts.failed ? "failed" : "crashed"}` : "Every run failed or crashed"}, with:</div>
                  {failure.length > 0 && (
                    <pre class="last-lines small-lines">
                      <code>{failure[failure.length - 1]}</code>
                    </pre>
                  )}
                </>
              ) : g.metric ? (
                `No run of this group logged ${g.metric.name}.`
              ) : (
                "No metric to rank these runs by: name one above."
              )}
            </div>
          )}
        </div>
        {g.curve.length > 1 && (
          <div class="group-spark" title={`The best run's ${g.metric?.name ?? "metric"}${g.baseline_value !== null ? "; dashed: the baseline's" : ""}`}>
            <Sparkline values={g.curve} baseline={g.baseline_value} tone={tone === "plain" ? "plain" : tone} />
          </div>
        )}
      </div>
      <RunsFold runs={g.runs} total={total} metric={g.metric?.name ?? null} />
    </article>
  );
}

function VsBaseline({ g, isBaseline }: { g: ReportGroup; isBaseline: boolean }) {
  if (isBaseline)
    return (
      <div class="vs-base muted" data-testid="vs-baseline" data-better="baseline">
        This is the baseline.
      </div>
    );
  if (g.baseline_value === null || g.delta === null || g.better_than_baseline === null)
    return (
      <div class="vs-base muted" data-testid="vs-baseline" data-better="none">
        {g.baseline_value === null ? "The baseline has no value of this metric." : "Not compared with the baseline."}
      </div>
    );
  const pct = g.baseline_value !== 0 ? (g.delta / Math.abs(g.baseline_value)) * 100 : null;
  return (
    <div class={`vs-base ${g.better_than_baseline ? "better" : "worse"}`} data-testid="vs-baseline" data-better={String(g.better_than_baseline)}>
      <span class="vs-delta num">
        {fmtDelta(g.delta)}
        {pct !== null && <span class="vs-pct"> ({fmtPct(pct)})</span>}
      </span>
      <span class="vs-word">{g.better_than_baseline ? "better than" : "worse than"} the baseline</span>
      <span class="muted num"> {fmtNum(g.baseline_value)}</span>
    </div>
  );
}

function RunsFold({ runs, total, metric }: { runs: RunBrief[]; total: number; metric: string | null }) {
  const [open, setOpen] = useState(false);
  const shown = open ? runs : [];
  return (
    <div class="group-runs">
      <button class="link-btn small" onClick={() => setOpen(!open)} aria-expanded={open}>
        <span class={`caret ${open ? "open" : ""}`}>▸</span> {plural(total, "run")}
      </button>
      {open && (
        <ul class="brief-list compact">
          {shown.map((b) => (
            <li key={b.id}>
              <StatusPill status={b.status} />
              <a href={runPath(b.project, b.id)}>{b.name}</a>
              <span class="muted push-right num">
                {metric && b.value !== null ? (
                  <>
                    <span class="mono">{metric}</span> {fmtNum(b.value)}
                  </>
                ) : (
                  ""
                )}
              </span>
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function QueueCard({ project, jobs, error, retry, left }: { project: string; jobs: QueueJob[] | undefined; error: Error | undefined; retry: () => void; left: number | null }) {
  const waiting = jobs?.filter((j) => j.state === "waiting").length ?? 0;
  // What still waits first, then the newest.
  const sorted = jobs ? [...jobs].sort((a, b) => Number(b.state === "waiting") - Number(a.state === "waiting") || (a.state === "waiting" ? a.number - b.number : b.number - a.number)) : [];
  return (
    <Section
      title="Queue"
      id="queue"
      right={
        jobs && (
          <span class="muted">
            {plural(jobs.length, "job")} · {fmtNum(left ?? waiting)} waiting
          </span>
        )
      }
    >
      {error ? (
        <ErrorBox error={error} retry={retry} />
      ) : !jobs ? (
        <Loading />
      ) : jobs.length === 0 ? (
        <div class="plot-none">
          Nothing queued. <code>labbook queue add --why "…" -- python train.py</code> queues a job; <code>labbook queue run</code> runs them.
        </div>
      ) : (
        <div class="hscroll">
          <table class="table queue-table" data-testid="queue">
            <thead>
              <tr>
                <th class="num">#</th>
                <th>State</th>
                <th>What</th>
                <th>Why</th>
                <th class="num">GPUs</th>
                <th>Run</th>
                <th class="num">Started</th>
                <th class="num">Took</th>
                <th>Note</th>
              </tr>
            </thead>
            <tbody>
              {sorted.map((j) => (
                <tr key={j.number} data-job={j.number} data-state={j.state}>
                  <td class="num mono">{j.number}</td>
                  <td>
                    <StatePill state={j.state} />
                  </td>
                  <td class="job-what">
                    {j.sweep ? (
                      <a href={sweepPath(project, j.sweep)}>
                        sweep <span class="mono">{j.sweep}</span>
                      </a>
                    ) : (
                      <code class="job-cmd" title={commandText(j.command)}>
                        {commandText(j.command)}
                      </code>
                    )}
                    {j.plan && <span class="badge subtle">plan {j.plan}</span>}
                  </td>
                  <td class="job-why">{j.why ?? <span class="muted">—</span>}</td>
                  <td class="num">{j.gpus ? fmtNum(j.gpus) : <span class="muted">0</span>}</td>
                  <td>{j.run_id ? <a href={runPath(project, j.run_id)} class="mono">{j.run_id}</a> : <span class="muted">—</span>}</td>
                  <td class="num muted" title={fmtDate(j.started_ms)}>
                    {fmtRelative(j.started_ms) || "—"}
                  </td>
                  <td class="num muted">{j.started_ms ? fmtDuration((j.ended_ms ?? Date.now()) - j.started_ms) : ""}</td>
                  <td class="muted">{j.note ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Section>
  );
}
