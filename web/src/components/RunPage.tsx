import type { JSX } from "preact";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { ConfigValue, Environment, OutputChunk, Run, RunDetail } from "../api";
import { ApiError, api, isNum, num, runsByIds } from "../api";
import { loggedOnce } from "../chartdata";
import { fmtBytes, fmtDate, fmtDuration, fmtNum, fmtRelative, fmtValue, plural, runColor } from "../format";
import { useLive } from "../live";
import { navigate, projectPath, runPath, setParams, withParams } from "../router";
import { ChartControls, ChartGrid, chartSettings } from "./Charts";
import { ArtifactsTab } from "./Artifacts";
import { Empty, ErrorBox, Loading, Markdown, Section, StatusPill, Tags, toast, useAsync, useTicker } from "./common";
import { ChildRuns, Datasets, LineagePanel, Outputs, ParentLink, RunArtifactVersions, RunTags } from "./RunExtras";
import { RunReplays } from "./Replays";

const TABS = [
  ["overview", "Overview"],
  ["artifacts", "Artifacts"],
  ["lineage", "Lineage"],
  ["system", "System"],
  ["environment", "Environment"],
  ["code", "Code"],
  ["logs", "Logs"],
  ["notebook", "Notebook"],
] as const;

export function RunPage({ project, id, params }: { project: string; id: string; params: URLSearchParams }) {
  const run = useAsync(() => api.run(id), [id]);
  const tab = params.get("tab") ?? "overview";
  // A run reached under another project's path (an old link, a moved run)
  // shows at its own address, so the nav and crumbs name its project.
  const home = run.data?.project;
  useEffect(() => {
    if (home && home !== project) navigate(runPath(home, id) + location.search, { replace: true });
  }, [home, project, id]);
  // Keep status, duration, metrics and summary fresh while the run is live:
  // the light Run record (no environment) merged into the detail.
  const [live, setLive] = useState<Run | null>(null);
  useEffect(() => setLive(null), [id]);
  const timer = useRef<ReturnType<typeof setTimeout> | null>(null);
  useLive(project, (changes) => {
    if (!changes.some((c) => c.id === id) || timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = null;
      runsByIds(project, [id]).then((rs) => rs[0] && setLive(rs[0]), () => undefined);
    }, 1000);
  });
  const r: RunDetail | undefined = run.data && live ? { ...run.data, ...live, metric_keys: Object.entries(live.metrics).map(([key, m]) => ({ key, count: m.count })) } : run.data;
  const now = useTicker(r?.status === "running" ? 1000 : 30000);

  if (run.error) {
    if (run.error instanceof ApiError && run.error.status === 404)
      return (
        <div class="page">
          <Empty title={`No run ${id}`}>
            <p>No run has this id: it may be mistyped, or the link may come from another store.</p>
            <a class="btn" href={projectPath(project)} data-testid="back-to-project">
              ← The runs of {project}
            </a>
          </Empty>
        </div>
      );
    return <div class="page"><ErrorBox error={run.error} retry={run.reload} /></div>;
  }
  if (!r) return <div class="page"><Loading /></div>;
  const duration = r.status === "running" ? now - r.created_ms : r.duration_ms;
  const env = r.environment;
  const cmd = env?.command?.map(shellQuote).join(" ");
  return (
    <div class="page run-page" data-run={r.id}>
      <div class="crumbs">
        <a href={projectPath(project)}>{project}</a>
        <span class="muted">/</span>
        <span>{r.name}</span>
      </div>
      <div class="run-head">
        <div class="run-title">
          <span class="swatch run-swatch" style={{ backgroundColor: runColor(r.id) }} title="This run's color in every chart" />
          <h1>{r.name}</h1>
          <StatusPill status={r.status} />
          <span class="mono muted">{r.id}</span>
          {r.deleted && <span class="badge danger">deleted</span>}
        </div>
        <div class="run-actions">
          <a class="btn btn-sm" href={projectPath(project, "compare") + withParams({ runs: r.id, base: r.id }, "")}>
            Compare…
          </a>
        </div>
      </div>
      <dl class="facts">
        <Fact label="Created" value={<span title={fmtDate(r.created_ms)}>{fmtRelative(r.created_ms, now)}</span>} />
        <Fact label="Duration" value={<span class="num">{fmtDuration(duration)}</span>} />
        {r.exit_code !== null && <Fact label="Exit code" value={<span class="num">{r.exit_code}</span>} />}
        {r.parent && <Fact label="Parent run" value={<ParentLink r={r} />} />}
        {r.group && <Fact label="Group" value={r.group} />}
        {r.tags.length > 0 && <Fact label="Tags" value={<Tags tags={r.tags} />} />}
        {r.host && <Fact label="Host" value={r.host} />}
        {env?.git?.commit && <Fact label="Commit" value={<span class="mono">{env.git.commit.slice(0, 10)}{env.git.dirty ? " (dirty)" : ""}</span>} />}
      </dl>
      {cmd && (
        <div class="command mono" title="Command">
          <span class="muted">$</span> {cmd}
        </div>
      )}
      {r.error && (
        <div class="error-box run-error">
          <pre class="mono">{r.error}</pre>
        </div>
      )}
      <nav class="tabs" role="tablist">
        {TABS.map(([k, label]) => (
          <button key={k} role="tab" class={`tab ${tab === k ? "active" : ""}`} aria-selected={tab === k} data-tab={k} onClick={() => setParams({ tab: k === "overview" ? null : k, model: null, path: null })}>
            {label}
            {k === "notebook" && r.notebook.length > 0 && <span class="count">{r.notebook.length}</span>}
          </button>
        ))}
      </nav>
      {tab === "overview" && <Overview r={r} project={project} params={params} />}
      {tab === "artifacts" && <ArtifactsTab run={r} params={params} />}
      {tab === "lineage" && <LineagePanel source={{ kind: "run", id: r.id }} />}
      {tab === "system" && <RunMetrics r={r} project={project} params={params} sys />}
      {tab === "environment" && <EnvironmentView env={env} />}
      {tab === "code" && <CodeView env={env} />}
      {tab === "logs" && <Logs id={r.id} live={r.status === "running"} />}
      {tab === "notebook" && <RunNotebook r={r} project={project} onAdded={run.reload} />}
    </div>
  );
}

/** A command-line argument as a shell would need it. */
function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`;
}

function Fact({ label, value }: { label: string; value: JSX.Element | string }) {
  return (
    <div class="fact">
      <dt>{label}</dt>
      <dd>{value}</dd>
    </div>
  );
}

function Overview({ r, project, params }: { r: RunDetail; project: string; params: URLSearchParams }) {
  return (
    <div class="stack">
      <Section title="Why">
        {r.notes ? <Markdown text={r.notes} /> : <p class="muted">No notes. Say what a run tests with <code>labbook.init(notes="…")</code> or <code>labbook run --why "…"</code>.</p>}
      </Section>
      <RunReplays r={r} />
      <div class="two-col">
        <Section title="Config" right={<span class="muted num">{plural(Object.keys(r.config).length, "key")}</span>}>
          <KeyValues obj={r.config} empty="No config recorded." />
        </Section>
        <Section title="Summary" right={<span class="muted num">{plural(Object.keys(r.metrics).length, "metric")}</span>}>
          <SummaryTable r={r} />
        </Section>
      </div>
      <ChildRuns r={r} project={project} />
      <RunArtifactVersions r={r} />
      <Datasets inputs={r.inputs ?? []} />
      <Outputs r={r} project={project} />
      <RunTags tags={r.kv_tags ?? {}} />
      <RunMetrics r={r} project={project} params={params} />
    </div>
  );
}

export function KeyValues({ obj, empty }: { obj: { [k: string]: ConfigValue }; empty: string }) {
  const keys = Object.keys(obj).sort();
  if (!keys.length) return <p class="muted">{empty}</p>;
  return (
    <table class="table kv" data-testid="config-table">
      <tbody>
        {keys.map((k) => (
          <tr key={k}>
            <td class="mono key">{k}</td>
            <td class="mono val">{fmtValue(obj[k])}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function SummaryTable({ r }: { r: RunDetail }) {
  const metrics = Object.keys(r.metrics).sort();
  const user = Object.keys(r.summary).sort();
  if (!metrics.length && !user.length) return <p class="muted">No metrics logged yet.</p>;
  return (
    <table class="table kv summary" data-testid="summary-table">
      <thead>
        <tr>
          <th>Metric</th>
          <th class="num">Last</th>
          <th class="num">Min</th>
          <th class="num">Max</th>
          <th class="num">Points</th>
        </tr>
      </thead>
      <tbody>
        {metrics.map((k) => {
          const m = r.metrics[k];
          return (
            <tr key={k}>
              <td class="mono key">{k}</td>
              <td class="num">{fmtNum(m.last)}</td>
              <td class="num muted">{m.min === null ? "" : fmtNum(m.min)}</td>
              <td class="num muted">{m.max === null ? "" : fmtNum(m.max)}</td>
              <td class="num muted">{m.count.toLocaleString("en-US")}</td>
            </tr>
          );
        })}
        {user.length > 0 && (
          <tr class="group-head">
            <th colSpan={5}>
              Summary values <span class="muted">set with <code>run.summary[…]</code></span>
            </th>
          </tr>
        )}
        {user.map((k) => (
          <tr key={`s-${k}`} class="summary-row" data-key={k}>
            <td class="mono key">{k}</td>
            <td class="num">{isNum(r.summary[k]) ? fmtNum(num(r.summary[k])) : fmtValue(r.summary[k])}</td>
            <td />
            <td />
            <td />
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RunMetrics({ r, project, params, sys }: { r: RunDetail; project: string; params: URLSearchParams; sys?: boolean }) {
  const keys = useMemo(() => {
    const all = new Set([...r.metric_keys.map((k) => k.key), ...Object.keys(r.metrics)]);
    return [...all].filter((k) => k.startsWith("sys/") === !!sys).sort();
  }, [r.id, r.metric_keys.map((k) => k.key).join(), Object.keys(r.metrics).join(), sys]);
  const settings = chartSettings(params);
  const runs = useMemo(() => [{ id: r.id, name: r.name, created_ms: r.created_ms, color: runColor(r.id), metrics: r.metrics }], [r.id, r.name, JSON.stringify(r.metrics)]);
  if (!keys.length)
    return sys ? (
      <Empty title="No system metrics">System metrics (<code>sys/cpu_percent</code>, memory, GPUs) are sampled every 5 s unless <code>system_metrics=False</code>.</Empty>
    ) : (
      <Empty title="No metrics yet">Log some with <code>run.log({"{"}"loss": 0.5{"}"})</code>.</Empty>
    );
  // Controls for curves only: values logged once have no axis to set.
  const once = loggedOnce(keys, runs, (run, k) => run.metrics[k]?.count);
  return (
    <div class="charts-block">
      {keys.some((k) => !once.has(k)) && <ChartControls settings={settings} hasZoom={!!settings.zoom} />}
      <ChartGrid project={project} runs={runs} keys={keys} settings={settings} keyFilter={(k) => k.startsWith("sys/") === !!sys} />
    </div>
  );
}

function EnvironmentView({ env }: { env: Environment | null }) {
  const [q, setQ] = useState("");
  if (!env) return <Empty title="No environment captured">This run did not record where it ran.</Empty>;
  const py = env.python;
  const pkgs = (py?.packages ?? []).filter((p) => !q || p.name.toLowerCase().includes(q.toLowerCase()));
  return (
    <div class="stack">
      <div class="two-col">
        <Section title="Hardware">
          <table class="table kv">
            <tbody>
              <Row k="Host" v={env.host} />
              <Row k="OS" v={[env.os, env.kernel && `(${env.kernel})`, env.arch].filter(Boolean).join(" ")} />
              <Row k="CPU" v={[env.cpu_model, env.cpu_count && `× ${env.cpu_count}`].filter(Boolean).join(" ")} />
              <Row k="Memory" v={fmtBytes(env.memory_bytes)} />
              {(env.gpus ?? []).map((g, i) => (
                <Row key={i} k={`GPU ${i}`} v={[g.name, g.memory_bytes && fmtBytes(g.memory_bytes), (g.driver_version ?? g.driver) && `driver ${g.driver_version ?? g.driver}`, (g.cuda_version ?? g.cuda) && `CUDA ${g.cuda_version ?? g.cuda}`].filter(Boolean).join(" · ")} />
              ))}
              {(env.gpus ?? []).length === 0 && <Row k="GPUs" v="none detected" />}
            </tbody>
          </table>
        </Section>
        <Section title="Process">
          <table class="table kv">
            <tbody>
              <Row k="User" v={env.user} />
              <Row k="Directory" v={env.cwd} mono />
              <Row k="Python" v={[py?.implementation, py?.version].filter(Boolean).join(" ")} />
              <Row k="Executable" v={py?.executable} mono />
              {env.seed && <Row k="Seed" v={`${env.seed.key ?? ""} = ${String(env.seed.value)}`} mono />}
              {Object.entries(env.env_vars ?? {}).map(([k, v]) => (
                <Row key={k} k={k} v={v} mono />
              ))}
            </tbody>
          </table>
        </Section>
      </div>
      <Section
        title="Packages"
        right={
          <input class="input input-sm" placeholder="Search packages" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} data-testid="package-search" />
        }
      >
        {(py?.packages ?? []).length === 0 ? (
          <p class="muted">No Python packages recorded.</p>
        ) : (
          <div class="pkg-table">
            <table class="table kv">
              <thead>
                <tr>
                  <th>Package</th>
                  <th>Version</th>
                </tr>
              </thead>
              <tbody>
                {pkgs.map((p) => (
                  <tr key={p.name}>
                    <td class="mono">{p.name}</td>
                    <td class="mono">{p.version}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {pkgs.length === 0 && <p class="muted pad">No package matches “{q}”.</p>}
          </div>
        )}
      </Section>
    </div>
  );
}

function Row({ k, v, mono }: { k: string; v: string | number | null | undefined; mono?: boolean }) {
  if (v === undefined || v === null || v === "") return null;
  return (
    <tr>
      <td class="key">{k}</td>
      <td class={mono ? "mono" : ""}>{String(v)}</td>
    </tr>
  );
}

export function DiffView({ diff }: { diff: string }) {
  const lines = diff.split("\n");
  return (
    <pre class="diff mono" data-testid="diff">
      {lines.map((l, i) => {
        const cls = l.startsWith("+++") || l.startsWith("---") ? "meta" : l.startsWith("+") ? "add" : l.startsWith("-") ? "del" : l.startsWith("@@") ? "hunk" : l.startsWith("diff ") || l.startsWith("index ") ? "meta" : "";
        return (
          <div class={`dl ${cls}`} key={i}>
            {l || " "}
          </div>
        );
      })}
    </pre>
  );
}

function CodeView({ env }: { env: Environment | null }) {
  const g = env?.git;
  if (!g) return <Empty title="No git information">The run did not start inside a git repository.</Empty>;
  const adds = (g.diff ?? "").split("\n").filter((l) => l.startsWith("+") && !l.startsWith("+++")).length;
  const dels = (g.diff ?? "").split("\n").filter((l) => l.startsWith("-") && !l.startsWith("---")).length;
  return (
    <div class="stack">
      <Section title="Git">
        <table class="table kv">
          <tbody>
            <Row k="Commit" v={g.commit} mono />
            <Row k="Branch" v={g.branch} mono />
            <Row k="Remote" v={g.remote_url} mono />
            <Row k="Root" v={g.root} mono />
            <tr>
              <td class="key">Working tree</td>
              <td>{g.dirty ? <span class="badge warn">dirty</span> : <span class="badge ok">clean</span>}</td>
            </tr>
          </tbody>
        </table>
      </Section>
      {g.diff ? (
        <Section
          title="Uncommitted changes"
          right={
            <span class="num">
              <span class="add-text">+{adds}</span> <span class="del-text">−{dels}</span>
              {g.diff_truncated && <span class="badge warn">truncated</span>}
            </span>
          }
        >
          <DiffView diff={g.diff} />
        </Section>
      ) : (
        g.dirty === false && null
      )}
      {(g.diff_excluded ?? []).length > 0 && (
        <Section title="Left out of the diff" right={<span class="muted num">{g.diff_excluded?.length}</span>}>
          <p class="muted">Changed files named like secrets; their contents were never stored.</p>
          <ul class="file-list mono" data-testid="diff-excluded">
            {g.diff_excluded?.map((f) => <li key={f}>{f}</li>)}
          </ul>
        </Section>
      )}
      {(g.untracked ?? []).length > 0 && (
        <Section title="Untracked files" right={<span class="muted num">{g.untracked?.length}</span>}>
          <ul class="file-list mono" data-testid="untracked">
            {g.untracked?.slice(0, 500).map((f) => <li key={f}>{f}</li>)}
          </ul>
          {(g.untracked?.length ?? 0) > 500 && <p class="muted">…and {(g.untracked?.length ?? 0) - 500} more</p>}
        </Section>
      )}
    </div>
  );
}

function Logs({ id, live }: { id: string; live: boolean }) {
  const out = useAsync(() => api.output(id), [id]);
  const [q, setQ] = useState("");
  const [stream, setStream] = useState<"all" | "stdout" | "stderr">("all");
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    if (!live) return;
    const t = setInterval(out.reload, 3000);
    return () => clearInterval(t);
  }, [live]);
  const chunks: OutputChunk[] = (out.data?.chunks ?? []).filter((c) => stream === "all" || c.stream === stream);
  const re = useMemo(() => (q ? new RegExp(q.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "gi") : null), [q]);
  let matches = 0;
  const rendered = chunks.map((c, i) => {
    if (!re) return <span class={c.stream} key={i}>{c.text}</span>;
    const parts: (string | JSX.Element)[] = [];
    let last = 0;
    for (const m of c.text.matchAll(re)) {
      const at = m.index ?? 0;
      parts.push(c.text.slice(last, at));
      parts.push(<mark key={at}>{m[0]}</mark>);
      last = at + m[0].length;
      matches++;
    }
    parts.push(c.text.slice(last));
    return <span class={c.stream} key={i}>{parts}</span>;
  });
  useEffect(() => {
    pre.current?.querySelector("mark")?.scrollIntoView({ block: "center" });
  }, [q]);
  if (out.error) return <ErrorBox error={out.error} retry={out.reload} />;
  if (!out.data) return <Loading />;
  if (!out.data.chunks.length) return <Empty title="No output captured">Output is kept when a program runs under <code>labbook run -- …</code>.</Empty>;
  return (
    <div class="logs card">
      <div class="logs-bar">
        <input class="input" placeholder="Search output" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} data-testid="log-search" />
        {q && <span class="muted num" data-testid="log-matches">{matches} match{matches === 1 ? "" : "es"}</span>}
        <div class="seg">
          {(["all", "stdout", "stderr"] as const).map((s) => (
            <button key={s} class={`seg-btn ${stream === s ? "active" : ""}`} onClick={() => setStream(s)}>
              {s}
            </button>
          ))}
        </div>
      </div>
      <pre class="log mono" ref={pre} data-testid="log">
        {rendered}
      </pre>
    </div>
  );
}

function RunNotebook({ r, project, onAdded }: { r: RunDetail; project: string; onAdded: () => void }) {
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const save = async () => {
    if (!text.trim()) return;
    setBusy(true);
    try {
      await api.addNote(project, text, r.id);
      setText("");
      onAdded();
    } catch (e) {
      toast(`Could not save the note: ${(e as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div class="stack">
      <div class="card note-editor">
        <textarea class="input" rows={3} placeholder="Add a note to this run (Markdown)" value={text} onInput={(e) => setText((e.target as HTMLTextAreaElement).value)} />
        <div class="row-gap end">
          <button class="btn btn-primary btn-sm" disabled={busy || !text.trim()} onClick={save}>
            Add note
          </button>
        </div>
      </div>
      {r.notebook.length === 0 ? (
        <Empty title="No notebook entries">Add one above, or from the command line: <code>labbook note {r.id} "…"</code>.</Empty>
      ) : (
        [...r.notebook]
          .sort((a, b) => b.created_ms - a.created_ms)
          .map((n, i) => (
            <div class="card note" key={i}>
              <div class="note-meta muted" title={fmtDate(n.created_ms)}>
                {fmtRelative(n.created_ms)}
              </div>
              <Markdown text={n.text} />
            </div>
          ))
      )}
    </div>
  );
}
