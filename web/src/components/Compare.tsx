import { useState } from "preact/hooks";
import type { ConfigValue, RunDetail } from "../api";
import { api, isNum, num } from "../api";
import { fmtDelta, fmtNum, fmtPct, fmtValue, plural, runColor } from "../format";
import { listParam, projectPath, runPath, setParams, withParams } from "../router";
import { Empty, ErrorBox, Loading, Section, StatusPill, useAsync } from "./common";
import { DiffView } from "./RunPage";

/** Whether lower is better for a metric, guessed from its name. */
function lowerIsBetter(key: string): boolean {
  return /loss|err|error|perplexity|ppl|mse|mae|rmse|nll|wer|cer|time|latency|_ms$|\/ms$|regret|cost/i.test(key);
}

/** The width of a run's column in the compare tables. */
const RUN_COL = 200;

function same(a: ConfigValue | undefined, b: ConfigValue | undefined): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function ComparePage({ project, params }: { project: string; params: URLSearchParams }) {
  const ids = listParam(params, "runs").slice(0, 24);
  const runs = useAsync(() => Promise.all(ids.map((id) => api.run(id))), [ids.join(",")]);
  const [showSame, setShowSame] = useState(false);
  const base = params.get("base") ?? ids[0];

  if (ids.length < 2)
    return (
      <div class="page">
        <div class="page-head">
          <h1>Compare</h1>
        </div>
        <Empty title="Pick two or more runs to compare">
          Select runs with the checkboxes in the <a href={projectPath(project) + withParams({ runs: ids.join(",") || null }, "")}>runs table</a>, then choose Compare.
        </Empty>
        <RecentPicker project={project} ids={ids} />
      </div>
    );
  if (runs.error) return <div class="page"><ErrorBox error={runs.error} retry={runs.reload} /></div>;
  if (!runs.data) return <div class="page"><Loading /></div>;
  const rs = runs.data;
  const b = rs.find((r) => r.id === base) ?? rs[0];

  const configKeys = [...new Set(rs.flatMap((r) => Object.keys(r.config)))].sort();
  const differing = configKeys.filter((k) => !rs.every((r) => same(r.config[k], rs[0].config[k])));
  const identical = configKeys.filter((k) => !differing.includes(k));
  const metricKeys = [...new Set(rs.flatMap((r) => [...Object.keys(r.metrics), ...Object.keys(r.summary).map((k) => `summary:${k}`)]))].sort((a, b2) => {
    const sa = a.startsWith("sys/") || a.startsWith("summary:") ? 1 : 0;
    const sb = b2.startsWith("sys/") || b2.startsWith("summary:") ? 1 : 0;
    return sa - sb || a.localeCompare(b2);
  });
  const value = (r: RunDetail, k: string): number | undefined => {
    if (k.startsWith("summary:")) {
      const v = r.summary[k.slice(8)];
      return isNum(v) ? num(v) : undefined;
    }
    return r.metrics[k] ? num(r.metrics[k].last) : undefined;
  };

  // Columns as wide as their content needs, not stretched across the
  // card: a value sits next to its key, not a screen away.
  const longest = Math.max(8, ...configKeys.map((k) => k.length), ...metricKeys.map((k) => (k.startsWith("summary:") ? k.length + 2 : k.length)));
  const keyW = Math.round(Math.min(340, Math.max(150, 30 + longest * 7.5)));
  const tableW = { width: `${keyW + rs.length * RUN_COL}px` };
  const cols = (
    <colgroup>
      <col style={{ width: `${keyW}px` }} />
      {rs.map((r) => (
        <col key={r.id} style={{ width: `${RUN_COL}px` }} />
      ))}
    </colgroup>
  );

  const head = (
    <tr>
      <th>Key</th>
      {rs.map((r) => (
        <th key={r.id} class={r.id === b.id ? "base-col" : ""}>
          <div class="run-col-head">
            <span class="swatch" style={{ background: runColor(r.id) }} />
            <a href={runPath(project, r.id)}>{r.name}</a>
          </div>
          {r.id === b.id ? (
            <span class="badge">baseline</span>
          ) : (
            <button class="link-btn small" onClick={() => setParams({ base: r.id })}>
              set as baseline
            </button>
          )}
        </th>
      ))}
    </tr>
  );

  return (
    <div class="page compare-page">
      <div class="page-head">
        <h1>Compare</h1>
        <span class="muted">{plural(rs.length, "run")} · baseline {b.name}</span>
      </div>
      <div class="compare-runs">
        {rs.map((r) => (
          <div class="compare-run" key={r.id}>
            <span class="swatch" style={{ background: runColor(r.id) }} />
            <a href={runPath(project, r.id)}>{r.name}</a>
            <StatusPill status={r.status} />
            <button class="icon-btn" title="Remove from the comparison" onClick={() => setParams({ runs: ids.filter((x) => x !== r.id).join(","), base: base === r.id ? null : base })}>
              ×
            </button>
          </div>
        ))}
      </div>

      <Section title="Config" right={<span class="muted">{plural(differing.length, "key differs", "keys differ")} · {identical.length} identical</span>}>
        <div class="hscroll">
          <table class="table compare" data-testid="config-diff" style={tableW}>
            {cols}
            <thead>{head}</thead>
            <tbody>
              {differing.map((k) => (
                <tr key={k} class="differs" data-key={k}>
                  <td class="mono key">{k}</td>
                  {rs.map((r) => (
                    <td key={r.id} class={`mono ${same(r.config[k], b.config[k]) ? "" : "changed"}`}>
                      {r.config[k] === undefined ? <span class="muted">—</span> : fmtValue(r.config[k])}
                    </td>
                  ))}
                </tr>
              ))}
              {identical.length > 0 && (
                <tr class="fold-row">
                  <td colSpan={rs.length + 1}>
                    <button class="link-btn" onClick={() => setShowSame(!showSame)}>
                      <span class={`caret ${showSame ? "open" : ""}`}>▸</span> {plural(identical.length, "identical key")}
                    </button>
                  </td>
                </tr>
              )}
              {showSame &&
                identical.map((k) => (
                  <tr key={k} class="same" data-key={k}>
                    <td class="mono key">{k}</td>
                    {rs.map((r) => (
                      <td key={r.id} class="mono muted">
                        {fmtValue(r.config[k])}
                      </td>
                    ))}
                  </tr>
                ))}
            </tbody>
          </table>
        </div>
      </Section>

      <Section title="Metrics" right={<span class="muted">last values · Δ against the baseline</span>}>
        <div class="hscroll">
          <table class="table compare" data-testid="metrics-diff" style={tableW}>
            {cols}
            <thead>{head}</thead>
            <tbody>
              {metricKeys.map((k) => {
                const bv = value(b, k);
                return (
                  <tr key={k}>
                    <td class="mono key">{k.startsWith("summary:") ? <>{k.slice(8)} <span class="badge subtle">summary</span></> : k}</td>
                    {rs.map((r) => {
                      const v = value(r, k);
                      if (v === undefined) return <td key={r.id} class="muted">—</td>;
                      const isBase = r.id === b.id;
                      const d = bv !== undefined ? v - bv : NaN;
                      const pct = bv !== undefined && bv !== 0 ? (d / Math.abs(bv)) * 100 : NaN;
                      return (
                        <td key={r.id} class="metric-cell">
                          <div class="num-val">{fmtNum(v)}</div>
                          {!isBase && bv !== undefined && Number.isFinite(d) && d !== 0 && (
                            <div class={`delta ${(d > 0) !== lowerIsBetter(k) ? "better" : "worse"}`} title={lowerIsBetter(k) ? "lower is better" : "higher is better"}>
                              {fmtDelta(d)} {Number.isFinite(pct) && <span class="pct">({fmtPct(pct)})</span>}
                            </div>
                          )}
                          {!isBase && d === 0 && <div class="delta muted">=</div>}
                        </td>
                      );
                    })}
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </Section>

      <Section title="Environment" right={<span class="muted">packages against the baseline</span>}>
        <EnvDiff rs={rs} b={b} />
      </Section>

      <Section title="Code">
        <div class="hscroll">
          <table class="table compare" data-testid="code-diff" style={tableW}>
            {cols}
            <thead>{head}</thead>
            <tbody>
              {(["commit", "branch", "remote_url"] as const).map((f) => (
                <tr key={f}>
                  <td class="key">{f === "remote_url" ? "remote" : f}</td>
                  {rs.map((r) => {
                    const v = r.environment?.git?.[f] ?? null;
                    const bv = b.environment?.git?.[f] ?? null;
                    return (
                      <td key={r.id} class={`mono ${v !== bv ? "changed" : ""}`}>
                        {v ? (f === "commit" ? v.slice(0, 10) : v) : <span class="muted">—</span>}
                      </td>
                    );
                  })}
                </tr>
              ))}
              <tr>
                <td class="key">working tree</td>
                {rs.map((r) => (
                  <td key={r.id}>{r.environment?.git ? r.environment.git.dirty ? <span class="badge warn">dirty</span> : <span class="badge ok">clean</span> : <span class="muted">—</span>}</td>
                ))}
              </tr>
              <tr>
                <td class="key">python</td>
                {rs.map((r) => (
                  <td key={r.id} class="mono">
                    {r.environment?.python?.version ?? "—"}
                  </td>
                ))}
              </tr>
            </tbody>
          </table>
        </div>
        {rs.some((r) => r.environment?.git?.diff) && <DirtyDiffs rs={rs} />}
      </Section>
    </div>
  );
}

function DirtyDiffs({ rs }: { rs: RunDetail[] }) {
  const [open, setOpen] = useState<string | null>(null);
  return (
    <div class="dirty-diffs">
      {rs
        .filter((r) => r.environment?.git?.diff)
        .map((r) => (
          <div key={r.id}>
            <button class="link-btn" onClick={() => setOpen(open === r.id ? null : r.id)}>
              <span class={`caret ${open === r.id ? "open" : ""}`}>▸</span> uncommitted changes of {r.name}
            </button>
            {open === r.id && <DiffView diff={r.environment?.git?.diff ?? ""} />}
          </div>
        ))}
    </div>
  );
}

function EnvDiff({ rs, b }: { rs: RunDetail[]; b: RunDetail }) {
  const pk = (r: RunDetail) => new Map((r.environment?.python?.packages ?? []).map((p) => [p.name, p.version]));
  const bp = pk(b);
  const others = rs.filter((r) => r.id !== b.id);
  const rows = others.map((r) => {
    const p = pk(r);
    const added = [...p].filter(([n]) => !bp.has(n));
    const removed = [...bp].filter(([n]) => !p.has(n));
    const changed = [...p].filter(([n, v]) => bp.has(n) && bp.get(n) !== v).map(([n, v]) => [n, bp.get(n) ?? "", v] as const);
    return { r, added, removed, changed };
  });
  if (rows.every((x) => !x.added.length && !x.removed.length && !x.changed.length))
    return <p class="muted" data-testid="env-diff">Every run has the same {plural(bp.size, "package")} as the baseline{b.environment?.python?.version ? ` and Python ${b.environment.python.version}` : ""}.</p>;
  return (
    <div class="env-diff" data-testid="env-diff">
      {rows.map(({ r, added, removed, changed }) => (
        <div key={r.id} class="env-diff-run">
          <div class="env-diff-head">
            <span class="swatch" style={{ background: runColor(r.id) }} />
            {r.name}
          </div>
          {!added.length && !removed.length && !changed.length && <div class="muted">same packages</div>}
          {added.map(([n, v]) => (
            <div class="mono add-text" key={`a${n}`}>+ {n} {v}</div>
          ))}
          {removed.map(([n, v]) => (
            <div class="mono del-text" key={`r${n}`}>− {n} {v}</div>
          ))}
          {changed.map(([n, from, to]) => (
            <div class="mono" key={`c${n}`}>
              ~ {n} <span class="del-text">{from}</span> → <span class="add-text">{to}</span>
            </div>
          ))}
        </div>
      ))}
    </div>
  );
}

function RecentPicker({ project, ids }: { project: string; ids: string[] }) {
  const recent = useAsync(() => api.runs(project, { limit: 12 }), [project]);
  if (!recent.data || recent.data.runs.length === 0) return null;
  return (
    <div class="card pad">
      <div class="muted" style={{ marginBottom: "8px" }}>
        Or add recent runs:
      </div>
      <div class="chip-list">
        {recent.data.runs.map((r) => (
          <button
            key={r.id}
            class={`chip ${ids.includes(r.id) ? "on" : ""}`}
            onClick={() => setParams({ runs: (ids.includes(r.id) ? ids.filter((x) => x !== r.id) : [...ids, r.id]).join(",") })}
          >
            <span class="swatch" style={{ background: runColor(r.id) }} />
            {r.name}
          </button>
        ))}
      </div>
    </div>
  );
}
