// What a run holds beyond config and metrics: key/value tags, the datasets
// it used, the models it logged, and where it sits among nested runs (its
// parent, its children side by side).
import { useMemo, useState } from "preact/hooks";
import type { ArtifactVersion, DatasetInput, Run, RunDetail } from "../api";
import { ApiError, api, num } from "../api";
import { headlineMetricKeys, varyingConfigKeys } from "../columns";
import { fmtBytes, fmtDate, fmtNum, fmtRelative, fmtValue, plural } from "../format";
import { artifactPath, modelPath, projectPath, runPath, withParams } from "../router";
import { ErrorBox, Loading, Section, StatusPill, lazyModule, useAsync } from "./common";
import type { LineageSource } from "./Lineage";

/** MLflow's own tags (`mlflow.user`, `mlflow.source.name`, …), folded away. */
function isSystemTag(k: string): boolean {
  return k.startsWith("mlflow.");
}

export function RunTags({ tags }: { tags: { [k: string]: string } }) {
  const [showSystem, setShowSystem] = useState(false);
  const keys = Object.keys(tags).sort();
  const user = keys.filter((k) => !isSystemTag(k));
  const system = keys.filter(isSystemTag);
  if (!keys.length) return null;
  return (
    <Section title="Tags" right={<span class="muted num">{plural(keys.length, "tag")}</span>} id="tags">
      {user.length > 0 ? <TagTable keys={user} tags={tags} testid="user-tags" /> : <p class="muted tags-empty">No tags but the client's own.</p>}
      {system.length > 0 && (
        <>
          <button class="link-btn fold-btn" onClick={() => setShowSystem(!showSystem)} aria-expanded={showSystem} data-testid="system-tags-toggle">
            <span class={`caret ${showSystem ? "open" : ""}`}>▸</span> system tags ({system.length})
          </button>
          {showSystem && <TagTable keys={system} tags={tags} testid="system-tags" />}
        </>
      )}
    </Section>
  );
}

function TagTable({ keys, tags, testid }: { keys: string[]; tags: { [k: string]: string }; testid: string }) {
  return (
    <table class="table kv tag-table" data-testid={testid}>
      <tbody>
        {keys.map((k) => (
          <tr key={k} data-key={k}>
            <td class="mono key">{k}</td>
            <td class="mono val">
              <div class="tag-val">{tags[k]}</div>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** A dataset's source as a person reads it: the URI or path it names, or
 * for code the script that made it. */
function sourceText(d: DatasetInput): string {
  try {
    const s = JSON.parse(d.source) as Record<string, unknown>;
    for (const k of ["uri", "url", "path", "table_name", "sql"]) if (typeof s[k] === "string") return s[k] as string;
    const t = s.tags as Record<string, unknown> | undefined;
    if (t && typeof t["mlflow.source.name"] === "string") return t["mlflow.source.name"] as string;
  } catch {
    // Not JSON: shown as written.
  }
  return d.source;
}

function pretty(s: string | undefined): string {
  if (!s) return "";
  try {
    const v = JSON.parse(s) as unknown;
    // MLflow nests JSON in strings (a tensor schema inside the schema).
    const deep = (x: unknown): unknown => {
      if (typeof x === "string" && /^[[{]/.test(x)) {
        try {
          return deep(JSON.parse(x));
        } catch {
          return x;
        }
      }
      if (Array.isArray(x)) return x.map(deep);
      if (x && typeof x === "object") return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, deep(y)]));
      return x;
    };
    return JSON.stringify(deep(v), null, 2);
  } catch {
    return s;
  }
}

export function Datasets({ inputs }: { inputs: DatasetInput[] }) {
  if (!inputs.length) return null;
  return (
    <Section title="Datasets" right={<span class="muted num">{plural(inputs.length, "dataset")}</span>} id="datasets">
      <table class="table datasets-table" data-testid="datasets">
        <thead>
          <tr>
            <th>Name</th>
            <th>Digest</th>
            <th>Source</th>
            <th>Context</th>
          </tr>
        </thead>
        <tbody>
          {inputs.map((d, i) => {
            const context = d.tags?.["mlflow.data.context"];
            return (
              <tr key={`${d.name}-${d.digest}-${i}`} data-dataset={d.name}>
                <td>
                  <span class="dataset-name">{d.name}</span>
                  {(d.schema || d.profile) && (
                    <details class="dataset-more">
                      <summary>schema and profile</summary>
                      {d.schema && <pre class="mono small">{pretty(d.schema)}</pre>}
                      {d.profile && <pre class="mono small">{pretty(d.profile)}</pre>}
                    </details>
                  )}
                </td>
                <td class="mono" data-col="digest">
                  {d.digest}
                </td>
                <td data-col="source" title={d.source}>
                  <span class="badge">{d.source_type}</span> <span class="mono small">{sourceText(d)}</span>
                </td>
                <td data-col="context">{context ? <span class="tag">{context}</span> : <span class="muted">—</span>}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </Section>
  );
}

export function Outputs({ r, project }: { r: RunDetail; project: string }) {
  const [open, setOpen] = useState<string | null>(null);
  const outputs = r.outputs ?? [];
  if (!outputs.length) return null;
  return (
    <Section title="Models" right={<span class="muted num">{plural(outputs.length, "logged model")}</span>} id="models">
      <table class="table outputs-table" data-testid="outputs">
        <thead>
          <tr>
            <th>Name</th>
            <th>Model id</th>
            <th class="num">Step</th>
            <th>Params</th>
            <th>Registered as</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {outputs.map((m) => {
            const params = Object.keys(m.params).sort();
            const isOpen = open === m.model_id;
            return [
              <tr key={m.model_id} data-model-id={m.model_id}>
                <td>
                  <span class="dataset-name">{m.name}</span>
                  {m.model_type && <span class="muted small"> {m.model_type}</span>}
                </td>
                <td class="mono small">{m.model_id}</td>
                <td class="num">{m.step}</td>
                <td>
                  {params.length ? (
                    <button class="link-btn" onClick={() => setOpen(isOpen ? null : m.model_id)} aria-expanded={isOpen}>
                      <span class={`caret ${isOpen ? "open" : ""}`}>▸</span> {plural(params.length, "param")}
                    </button>
                  ) : (
                    <span class="muted">—</span>
                  )}
                </td>
                <td data-col="registered">
                  {m.registered.length ? (
                    <span class="tags">
                      {m.registered.map((v) => (
                        <a class="alias" key={`${v.name}/${v.version}`} href={modelPath(v.name, v.version)}>
                          {v.name} <span class="alias-v">v{v.version}</span>
                        </a>
                      ))}
                    </span>
                  ) : (
                    <span class="muted">—</span>
                  )}
                </td>
                <td class="num">
                  <a href={`${runPath(project, r.id)}${withParams({ tab: "artifacts", model: m.model_id }, "")}`} data-testid="model-files">
                    Files
                  </a>
                </td>
              </tr>,
              isOpen && (
                <tr key={`${m.model_id}-params`} class="params-row">
                  <td colSpan={6}>
                    <table class="table kv">
                      <tbody>
                        {params.map((k) => (
                          <tr key={k}>
                            <td class="mono key">{k}</td>
                            <td class="mono val">{m.params[k]}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  </td>
                </tr>
              ),
            ];
          })}
        </tbody>
      </table>
    </Section>
  );
}

/** The run a run is nested under: a link, or what is wrong with it (no such
 * run, deleted, the run itself, or a cycle back to this run). */
export function ParentLink({ r }: { r: RunDetail }) {
  const id = r.parent;
  const parent = useAsync(() => (id && id !== r.id ? api.run(id) : Promise.resolve(null)), [id ?? "", r.id]);
  if (!id) return null;
  if (id === r.id)
    return (
      <span data-testid="parent" data-state="self">
        <span class="badge danger" title="Its mlflow.parentRunId tag names the run itself">its own parent</span>
      </span>
    );
  if (parent.error) {
    const missing = parent.error instanceof ApiError && parent.error.status === 404;
    return (
      <span data-testid="parent" data-state={missing ? "missing" : "error"}>
        <span class="mono">{id}</span>{" "}
        <span class="badge warn" title={missing ? "No run has this id: the parent was never logged here, or was removed for good" : parent.error.message}>
          {missing ? "not found" : "could not be read"}
        </span>
      </span>
    );
  }
  const p = parent.data;
  if (!p) return <span class="mono muted">{id}</span>;
  const cycle = p.parent === r.id;
  return (
    <span data-testid="parent" data-state={p.deleted ? "deleted" : cycle ? "cycle" : "ok"}>
      <a href={runPath(p.project, p.id)} title={`${p.name} (${p.id})`}>
        {p.name}
      </a>
      {p.deleted && (
        <>
          {" "}
          <span class="badge danger">deleted</span>
        </>
      )}
      {cycle && (
        <>
          {" "}
          <span class="badge warn" title={`${p.name}'s parent is this run: the two name each other`}>
            cycle
          </span>
        </>
      )}
    </span>
  );
}

/** Child runs. Their children are listed by the filter language's
 * `parent = "ID"`, as `labbook ls --filter` would. */
export function ChildRuns({ r, project }: { r: RunDetail; project: string }) {
  const children = useAsync((signal) => api.runs(project, { filter: `parent = ${JSON.stringify(r.id)}`, sort: "created", limit: 1000 }, signal), [project, r.id]);
  // A run that names itself as its parent is no child of its own.
  const list = useMemo(() => (children.data?.runs ?? []).filter((c) => c.id !== r.id), [children.data, r.id]);
  const config = useMemo(() => varyingConfigKeys(list, 8), [list]);
  const metrics = useMemo(() => headlineMetricKeys(list, 6), [list]);
  const numeric = useMemo(() => new Set(config.filter((k) => list.every((c) => c.config[k] === undefined || typeof c.config[k] === "number"))), [config, list]);
  if (children.error) return <ErrorBox error={children.error} retry={children.reload} />;
  if (!children.data) return null;
  if (!list.length) return null;
  const total = children.data.total - (children.data.runs.length - list.length);
  return (
    <Section
      title="Child runs"
      id="children"
      right={
        <span class="row-gap">
          <span class="muted num">{plural(total, "run")}</span>
          <a class="btn btn-sm" href={projectPath(project, "compare") + withParams({ runs: list.slice(0, 50).map((c) => c.id).join(",") }, "")}>
            Compare
          </a>
        </span>
      }
    >
      <div class="children-wrap">
        <table class="table children-table" data-testid="children">
          <thead>
            <tr>
              <th>Run</th>
              {config.map((k) => (
                <th key={k} class={numeric.has(k) ? "num" : ""} data-col={`config.${k}`}>
                  {k}
                </th>
              ))}
              {metrics.map((k) => (
                <th key={k} class="num" data-col={`metrics.${k}`}>
                  {k}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {list.map((c) => (
              <ChildRow key={c.id} c={c} config={config} metrics={metrics} />
            ))}
          </tbody>
        </table>
      </div>
      {total > list.length && <p class="muted small">Showing the first {list.length} of {total}.</p>}
      {config.length === 0 && <p class="muted small">The children's config is the same in every run.</p>}
    </Section>
  );
}

function ChildRow({ c, config, metrics }: { c: Run; config: string[]; metrics: string[] }) {
  return (
    <tr data-run={c.id}>
      <td>
        <span class="child-name">
          <StatusPill status={c.status} />
          <a href={runPath(c.project, c.id)}>{c.name}</a>
        </span>
      </td>
      {config.map((k) => (
        <td key={k} class={typeof c.config[k] === "number" ? "num" : ""} data-col={`config.${k}`}>
          {c.config[k] === undefined ? <span class="muted">—</span> : typeof c.config[k] === "number" ? fmtNum(c.config[k] as number) : fmtValue(c.config[k])}
        </td>
      ))}
      {metrics.map((k) => (
        <td key={k} class="num" data-col={`metrics.${k}`}>
          {c.metrics[k] ? fmtNum(num(c.metrics[k].last)) : <span class="muted">—</span>}
        </td>
      ))}
    </tr>
  );
}

// The lineage graph's code (layout and drawing) loads when a graph is first
// shown, from a run's page or a version's.
const useLineage = lazyModule(() => import("./Lineage"));

export function LineagePanel({ source }: { source: LineageSource }) {
  const { module: m, error } = useLineage();
  if (error) return <ErrorBox error={error} retry={() => location.reload()} />;
  if (!m) return <Loading label="Loading the lineage…" />;
  return <m.LineageTab source={source} />;
}

/** The artifact versions a run used and logged, beside its MLflow datasets
 * and models; nothing when it has none. */
export function RunArtifactVersions({ r }: { r: RunDetail }) {
  const io = useAsync((signal) => api.runVersions(r.id, signal), [r.id]);
  if (io.error)
    return (
      <Section title="Inputs and outputs">
        <ErrorBox error={io.error} retry={io.reload} />
      </Section>
    );
  const d = io.data;
  if (!d || (!d.inputs.length && !d.outputs.length)) return null;
  return (
    <Section
      title="Inputs and outputs"
      right={
        <a href={`${runPath(r.project, r.id)}${withParams({ tab: "lineage" }, "")}`} data-testid="run-lineage-link">
          Lineage graph →
        </a>
      }
      id="artifact-versions"
    >
      <div class="io-cols">
        <VersionTable title="Inputs" what="used" versions={d.inputs} total={d.inputs_total} home={r.project} testid="run-inputs" />
        <VersionTable title="Outputs" what="logged" versions={d.outputs} total={d.outputs_total} home={r.project} testid="run-outputs" />
      </div>
    </Section>
  );
}

function VersionTable({ title, what, versions, total, home, testid }: { title: string; what: string; versions: ArtifactVersion[]; total: number; home: string; testid: string }) {
  return (
    <div class="io-col" data-testid={testid}>
      <div class="mini-head">
        {title} <span class="muted num">{total}</span>
      </div>
      {versions.length === 0 ? (
        <p class="muted small">This run {what} no artifact versions.</p>
      ) : (
        <table class="table io-table">
          <thead>
            <tr>
              <th>Version</th>
              <th>Type</th>
              <th>Aliases</th>
              <th class="num">Size</th>
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => (
              <tr key={`${v.project}/${v.ref}`} data-ref={v.ref}>
                <td>
                  <a class="version-ref" href={artifactPath(v.project, v.name, v.version)} title={`${v.project}/${v.ref}, created ${fmtDate(v.created_ms)}`}>
                    {v.ref}
                  </a>
                  {v.project !== home && <span class="muted small"> in {v.project}</span>}
                  {v.deleted_ms !== null && <span class="badge danger">deleted</span>}
                </td>
                <td>
                  <span class={`badge type-badge type-${v.type === "dataset" || v.type === "model" ? v.type : "other"}`}>{v.type}</span>
                </td>
                <td data-col="aliases">
                  {v.aliases.length ? (
                    <span class="tags">
                      {v.aliases.map((a) => (
                        <span class="alias" key={a}>
                          @{a}
                        </span>
                      ))}
                    </span>
                  ) : (
                    <span class="muted">—</span>
                  )}
                </td>
                <td class="num" title={`${v.size.toLocaleString("en-US")} bytes · ${plural(v.file_count, "file")} · ${fmtRelative(v.created_ms)}`}>
                  {fmtBytes(v.size) || "0 B"}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {total > versions.length && <p class="muted small">…and {total - versions.length} more</p>}
    </div>
  );
}
