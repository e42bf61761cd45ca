// The model registry: registered models, their versions, aliases, stages,
// tags and descriptions, each version linked to the run that made it and to
// its logged model's files.
import { useEffect } from "preact/hooks";
import type { ModelVersion, RegisteredModel } from "../api";
import { ApiError, api } from "../api";
import { fmtDate, fmtRelative, plural } from "../format";
import { modelPath, runPath } from "../router";
import { Empty, ErrorBox, Loading, Section, useAsync } from "./common";

export function ModelsPage() {
  const models = useAsync((signal) => api.models(signal), []);
  if (models.error) return <div class="page"><ErrorBox error={models.error} retry={models.reload} /></div>;
  if (!models.data) return <div class="page"><Loading /></div>;
  const list = models.data.models;
  return (
    <div class="page models-page">
      <div class="page-head">
        <h1>Models</h1>
        <span class="muted">{plural(list.length, "registered model")}</span>
      </div>
      {list.length === 0 ? (
        <Empty title="No registered models">
          Register one with <code>mlflow.register_model("runs:/&lt;run id&gt;/model", "name")</code> against <code>labbook serve</code>.
        </Empty>
      ) : (
        <div class="card">
          <table class="table models-table" data-testid="models-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Description</th>
                <th>Latest</th>
                <th>Aliases</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {list.map((m) => {
                const latest = m.versions[0];
                return (
                  <tr key={m.name} data-model={m.name}>
                    <td>
                      <a class="model-link" href={modelPath(m.name)}>
                        {m.name}
                      </a>
                    </td>
                    <td class="desc-cell">{m.description ? m.description : <span class="muted">—</span>}</td>
                    <td data-col="latest">
                      {latest ? <a href={modelPath(m.name, latest.version)}>v{latest.version}</a> : <span class="muted">none</span>}
                    </td>
                    <td data-col="aliases">
                      <Aliases aliases={Object.entries(m.aliases).sort(([a], [b]) => (a < b ? -1 : 1))} model={m.name} />
                    </td>
                    <td title={fmtDate(m.updated_ms)}>{fmtRelative(m.updated_ms)}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

function Aliases({ aliases, model }: { aliases: [string, number][]; model: string }) {
  if (!aliases.length) return <span class="muted">—</span>;
  return (
    <span class="tags">
      {aliases.map(([a, v]) => (
        <a class="alias" key={a} href={modelPath(model, v)} title={`@${a} is version ${v}`}>
          @{a} <span class="alias-v">v{v}</span>
        </a>
      ))}
    </span>
  );
}

export function ModelPage({ name, version }: { name: string; version?: string }) {
  const model = useAsync((signal) => api.model(name, signal), [name]);
  // A version link (the registry's own, or the mlflow client's) brings its
  // row into view.
  useEffect(() => {
    if (model.data && version) document.querySelector(`tr[data-version="${CSS.escape(version)}"]`)?.scrollIntoView({ block: "center" });
  }, [model.data, version]);
  if (model.error) {
    if (model.error instanceof ApiError && model.error.status === 404)
      return (
        <div class="page">
          <Empty title={`No model ${name}`}>
            <p>No registered model has this name.</p>
            <a class="btn" href={modelPath()}>
              All models
            </a>
          </Empty>
        </div>
      );
    return <div class="page"><ErrorBox error={model.error} retry={model.reload} /></div>;
  }
  if (!model.data) return <div class="page"><Loading /></div>;
  const m = model.data;
  const missing = version !== undefined && !m.versions.some((v) => String(v.version) === version);
  const tags = Object.entries(m.tags);
  return (
    <div class="page model-page" data-model={m.name}>
      <div class="crumbs">
        <a href={modelPath()}>Models</a>
        <span class="muted">/</span>
        <span>{m.name}</span>
      </div>
      <div class="run-head">
        <div class="run-title">
          <h1>{m.name}</h1>
          <Aliases aliases={Object.entries(m.aliases).sort(([a], [b]) => (a < b ? -1 : 1))} model={m.name} />
        </div>
      </div>
      <dl class="facts">
        <div class="fact">
          <dt>Versions</dt>
          <dd>{m.versions.length}</dd>
        </div>
        <div class="fact">
          <dt>Created</dt>
          <dd title={fmtDate(m.created_ms)}>{fmtRelative(m.created_ms)}</dd>
        </div>
        <div class="fact">
          <dt>Updated</dt>
          <dd title={fmtDate(m.updated_ms)}>{fmtRelative(m.updated_ms)}</dd>
        </div>
      </dl>
      {m.description && <p class="model-desc" data-testid="model-description">{m.description}</p>}
      {tags.length > 0 && (
        <div class="kv-inline">
          {tags.map(([k, v]) => (
            <span class="tag" key={k}>
              {k}: {v}
            </span>
          ))}
        </div>
      )}
      {missing && (
        <div class="error-box" role="alert">
          <div>
            <strong>No version {version}</strong>
            <div class="error-msg">
              {m.name} has {m.versions.length ? `versions ${m.versions.map((v) => v.version).join(", ")}` : "no versions"}.
            </div>
          </div>
        </div>
      )}
      <Section title="Versions" right={<span class="muted">newest first</span>}>
        {m.versions.length === 0 ? <p class="muted">No versions registered yet.</p> : <Versions m={m} highlight={version} />}
      </Section>
    </div>
  );
}

function Versions({ m, highlight }: { m: RegisteredModel; highlight?: string }) {
  return (
    <div class="versions-wrap">
      <table class="table versions-table" data-testid="versions-table">
        <thead>
          <tr>
            <th>Version</th>
            <th>Aliases</th>
            <th>Stage</th>
            <th>Tags</th>
            <th>Description</th>
            <th>Source</th>
            <th>Run</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {m.versions.map((v) => (
            <VersionRow key={v.version} m={m} v={v} active={highlight === String(v.version)} />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function VersionRow({ m, v, active }: { m: RegisteredModel; v: ModelVersion; active: boolean }) {
  const tags = Object.entries(v.tags);
  const filesHref = v.model_id && v.project && v.run_id ? `${runPath(v.project, v.run_id)}?tab=artifacts&model=${encodeURIComponent(v.model_id)}` : null;
  return (
    <tr data-version={String(v.version)} class={active ? "highlight" : ""}>
      <td class="version-cell">
        <a href={modelPath(m.name, v.version)}>v{v.version}</a>
      </td>
      <td data-col="aliases">
        {v.aliases.length ? (
          <span class="tags">
            {[...v.aliases].sort().map((a) => (
              <span class="alias" key={a}>
                @{a}
              </span>
            ))}
          </span>
        ) : (
          <span class="muted">—</span>
        )}
      </td>
      <td data-col="stage">{v.stage && v.stage !== "None" ? <span class="badge">{v.stage}</span> : <span class="muted">{v.stage ?? "—"}</span>}</td>
      <td data-col="tags">
        {tags.length ? (
          <span class="tags">
            {tags.map(([k, val]) => (
              <span class="tag" key={k}>
                {k}: {val}
              </span>
            ))}
          </span>
        ) : (
          <span class="muted">—</span>
        )}
      </td>
      <td data-col="description">{v.description || <span class="muted">—</span>}</td>
      <td data-col="source" class="source-cell" title={v.source ?? ""}>
        <span class="mono small">{v.source ?? "—"}</span>
        {filesHref && (
          <a class="files-link" href={filesHref} data-testid="version-files">
            Browse files
          </a>
        )}
      </td>
      <td data-col="run">
        {v.run_id && v.project ? (
          <a href={runPath(v.project, v.run_id)} class="run-ref" title={`run ${v.run_id} in ${v.project}`}>
            {v.run_name ?? v.run_id}
            <span class="muted mono"> {v.run_id}</span>
          </a>
        ) : v.run_id ? (
          <span class="mono" title="This run is not in the store">
            {v.run_id} <span class="badge warn">not found</span>
          </span>
        ) : (
          <span class="muted">—</span>
        )}
      </td>
      <td title={fmtDate(v.created_ms)}>{fmtRelative(v.created_ms)}</td>
    </tr>
  );
}
