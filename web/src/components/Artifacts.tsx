// The artifacts browser: a run's (or a logged model's) files as a folder
// tree, each folder listed when first opened, and a preview of the chosen
// file by the kind the server gives it (tables, text, HTML, images,
// Parquet, or why not). MLflow model folders (a folder holding MLmodel)
// show their flavors, signature and input example. Every file, however
// broken, ends as a message inside its preview pane.
import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import type { ArtifactFile, ArtifactOwner, Preview, RunDetail } from "../api";
import { api } from "../api";
import { exampleTable } from "../example";
import { fmtBytes, plural } from "../format";
import { frameHeight, previewDocument } from "../htmlpreview";
import type { MlModel } from "../mlmodel";
import type { ParquetTable } from "../parquet";
import { setParams } from "../router";
import { Empty, ErrorBox, Loading, Markdown, useAsync } from "./common";

/** Rows of a Parquet file shown (as many as a CSV preview). */
const PARQUET_ROWS = 200;

function size(n: number | null | undefined): string {
  return n === 0 ? "0 B" : fmtBytes(n);
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

function ancestors(path: string): string[] {
  const parts = path.split("/").filter(Boolean);
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join("/"));
}

/** The run page's Artifacts tab: the run's own files, or those of a model
 * it logged (`model=` in the URL). */
export function ArtifactsTab({ run, params }: { run: RunDetail; params: URLSearchParams }) {
  const modelId = params.get("model");
  const selected = params.get("path") ?? "";
  const models = run.outputs ?? [];
  const owner: ArtifactOwner = modelId ? { kind: "model", id: modelId } : { kind: "run", id: run.id };
  const current = models.find((m) => m.model_id === modelId);
  return (
    <div class="stack">
      {(models.length > 0 || modelId) && (
        <div class="seg artifact-owners" role="tablist" data-testid="artifact-owners">
          <button class={`seg-btn ${!modelId ? "active" : ""}`} onClick={() => setParams({ model: null, path: null }, { push: true })}>
            Run files
          </button>
          {models.map((m) => (
            <button key={m.model_id} class={`seg-btn ${modelId === m.model_id ? "active" : ""}`} title={m.model_id} onClick={() => setParams({ model: m.model_id, path: null }, { push: true })}>
              Model: {m.name}
            </button>
          ))}
          {modelId && !current && <button class="seg-btn active mono">{modelId}</button>}
        </div>
      )}
      <ArtifactsBrowser key={`${owner.kind}:${owner.id}`} owner={owner} selected={selected} onSelect={(p) => setParams({ path: p || null }, { push: true })} />
    </div>
  );
}

type Listing = { files: ArtifactFile[] } | { error: Error };

export function ArtifactsBrowser({ owner, selected, onSelect }: { owner: ArtifactOwner; selected: string; onSelect: (path: string) => void }) {
  const [listings, setListings] = useState<Map<string, Listing>>(new Map());
  const [open, setOpen] = useState<Set<string>>(() => new Set(ancestors(selected)));
  const asked = useRef(new Set<string>());
  const [calls, setCalls] = useState(0);

  const load = (path: string) => {
    if (asked.current.has(path)) return;
    asked.current.add(path);
    setCalls((c) => c + 1);
    api.artifacts(owner, path).then(
      (l) => setListings((m) => new Map(m).set(path, { files: sortFiles(l.files) })),
      (e: unknown) => setListings((m) => new Map(m).set(path, { error: e instanceof Error ? e : new Error(String(e)) })),
    );
  };
  // The root, every open folder, and the folder around the chosen file.
  useEffect(() => {
    load("");
    for (const p of open) load(p);
  }, [open]);
  // A path chosen from outside (the URL, a link) opens the folders above it.
  useEffect(() => {
    const up = ancestors(selected);
    if (up.some((p) => !open.has(p))) setOpen((o) => new Set([...o, ...up]));
  }, [selected]);

  const toggle = (path: string) =>
    setOpen((o) => {
      const n = new Set(o);
      if (n.has(path)) n.delete(path);
      else n.add(path);
      return n;
    });

  const parent = listings.get(dirname(selected));
  const entry = selected && parent && "files" in parent ? parent.files.find((f) => f.path === selected) : undefined;
  // A chosen folder is listed in the pane even while closed in the tree;
  // one named by the address opens there too (once: a click may close it).
  const fromAddress = useRef<string | null>(selected);
  useEffect(() => {
    if (!entry?.is_dir) return;
    load(entry.path);
    if (entry.path === fromAddress.current) setOpen((o) => (o.has(entry.path) ? o : new Set([...o, entry.path])));
    fromAddress.current = null;
  }, [entry?.path]);

  const root = listings.get("");
  if (root && "error" in root) return <ErrorBox error={root.error} />;
  if (root && root.files.length === 0)
    return (
      <Empty title={owner.kind === "run" ? "No artifacts" : "No files"}>
        {owner.kind === "run" ? (
          <>
            Log files with <code>mlflow.log_artifact(path)</code> (or <code>log_figure</code>, <code>log_dict</code>, <code>log_table</code>) against <code>labbook serve</code>.
          </>
        ) : (
          "This logged model holds no files."
        )}
      </Empty>
    );

  return (
    <div class="artifacts" data-testid="artifacts" data-listings={calls}>
      <div class="artifact-tree card" role="tree" data-testid="artifact-tree">
        <button class={`tree-row root ${selected === "" ? "selected" : ""}`} onClick={() => onSelect("")} role="treeitem">
          <FolderIcon open />
          <span class="tree-name">{owner.kind === "run" ? "Run files" : "Model files"}</span>
        </button>
        {!root ? <Loading /> : <Folder path="" depth={1} listings={listings} open={open} selected={selected} toggle={toggle} onSelect={onSelect} />}
      </div>
      <div class="artifact-view">
        {selected === "" ? (
          root && <FolderView owner={owner} path="" listing={root} onSelect={onSelect} />
        ) : !parent ? (
          <Loading />
        ) : "error" in parent ? (
          <ErrorBox error={parent.error} />
        ) : !entry ? (
          <Empty title={`No file ${selected}`}>Nothing by this name in {dirname(selected) || "the top folder"}.</Empty>
        ) : entry.is_dir ? (
          listings.get(entry.path) ? <FolderView owner={owner} path={entry.path} listing={listings.get(entry.path) as Listing} onSelect={onSelect} /> : <Loading />
        ) : (
          <FilePreview key={entry.path} owner={owner} file={entry} />
        )}
      </div>
    </div>
  );
}

function sortFiles(files: ArtifactFile[]): ArtifactFile[] {
  return [...files].sort((a, b) => Number(b.is_dir) - Number(a.is_dir) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function Folder({
  path,
  depth,
  listings,
  open,
  selected,
  toggle,
  onSelect,
}: {
  path: string;
  depth: number;
  listings: Map<string, Listing>;
  open: Set<string>;
  selected: string;
  toggle: (p: string) => void;
  onSelect: (p: string) => void;
}) {
  const l = listings.get(path);
  const pad = { paddingLeft: `${8 + depth * 14}px` };
  if (!l) return <div class="tree-row muted" style={pad}>Loading…</div>;
  if ("error" in l) return <div class="tree-row tree-error" style={pad} title={l.error.message}>Could not list this folder: {l.error.message}</div>;
  if (l.files.length === 0) return <div class="tree-row muted" style={pad}>empty</div>;
  return (
    <>
      {l.files.map((f) => {
        const isOpen = open.has(f.path);
        return (
          <div key={f.path} role="none">
            <button
              class={`tree-row ${selected === f.path ? "selected" : ""}`}
              style={pad}
              role="treeitem"
              aria-expanded={f.is_dir ? isOpen : undefined}
              data-path={f.path}
              data-dir={f.is_dir ? "1" : undefined}
              onClick={() => {
                if (f.is_dir) toggle(f.path);
                onSelect(f.path);
              }}
            >
              {f.is_dir ? <span class={`caret ${isOpen ? "open" : ""}`}>▸</span> : <span class="caret-space" />}
              {f.is_dir ? <FolderIcon open={isOpen} /> : <FileIcon name={f.name} />}
              <span class="tree-name">{f.name}</span>
              {!f.is_dir && <span class="tree-size muted num">{size(f.size)}</span>}
            </button>
            {f.is_dir && isOpen && <Folder path={f.path} depth={depth + 1} listings={listings} open={open} selected={selected} toggle={toggle} onSelect={onSelect} />}
          </div>
        );
      })}
    </>
  );
}

function FolderIcon({ open }: { open?: boolean }) {
  return (
    <svg class="ficon folder" width="14" height="14" viewBox="0 0 24 24" aria-hidden="true">
      <path d={open ? "M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v1H7l-4 9V7z M7 10h15l-3 9H3z" : "M3 7a2 2 0 0 1 2-2h4l2 2h8a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2z"} fill="currentColor" />
    </svg>
  );
}

function FileIcon({ name }: { name: string }) {
  const ext = name.includes(".") ? name.slice(name.lastIndexOf(".") + 1).toLowerCase() : "";
  const kind = ["png", "jpg", "jpeg", "gif", "webp", "svg", "bmp"].includes(ext) ? "img" : ["csv", "tsv", "parquet", "pq"].includes(ext) ? "table" : name === "MLmodel" ? "model" : "doc";
  return (
    <svg class={`ficon file-${kind}`} width="14" height="14" viewBox="0 0 24 24" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="2" stroke-linejoin="round">
      <path d="M6 2h8l5 5v15H6z" />
      {kind === "img" && <path d="M8 17l3-4 2 2 2-3 2 5z" fill="currentColor" stroke="none" />}
      {kind === "table" && <path d="M9 11h7M9 14h7M9 17h7" />}
      {kind === "model" && <circle cx="12.5" cy="14" r="2.5" />}
    </svg>
  );
}

function FolderView({ owner, path, listing, onSelect }: { owner: ArtifactOwner; path: string; listing: Listing; onSelect: (p: string) => void }) {
  if ("error" in listing) return <ErrorBox error={listing.error} />;
  const files = listing.files;
  const mlmodel = files.find((f) => !f.is_dir && f.name === "MLmodel");
  return (
    <div class="stack">
      {mlmodel && <ModelCard owner={owner} folder={path} />}
      <div class="card preview-card">
        <header class="card-head">
          {path ? <h2 class="mono">{path}</h2> : <h2>{owner.kind === "run" ? "Run files" : "Model files"}</h2>}
          <div class="card-right muted">{plural(files.length, "item")}</div>
        </header>
        <table class="table folder-table" data-testid="folder-table">
          <tbody>
            {files.map((f) => (
              <tr key={f.path} data-path={f.path}>
                <td>
                  <button class="link-btn" onClick={() => onSelect(f.path)}>
                    {f.is_dir ? <FolderIcon /> : <FileIcon name={f.name} />} {f.name}
                    {f.is_dir ? "/" : ""}
                  </button>
                </td>
                <td class="num muted">{f.is_dir ? "" : size(f.size)}</td>
                <td class="num">
                  {!f.is_dir && (
                    <a href={api.rawUrl(owner, f.path)} download={f.name} title={`Download ${f.name}`}>
                      Download
                    </a>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}

/** A contained message in place of a preview. */
function Unshown({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="unshown" role="status" data-testid="preview-message">
      <strong>{title}</strong>
      {children && <div class="muted">{children}</div>}
    </div>
  );
}

function FilePreview({ owner, file }: { owner: ArtifactOwner; file: ArtifactFile }) {
  const preview = useAsync((signal) => api.preview(owner, file.path, signal), [owner.kind, owner.id, file.path]);
  const raw = api.rawUrl(owner, file.path);
  const p = preview.data;
  return (
    <div class="card preview-card" data-testid="preview" data-kind={p?.kind ?? ""} data-path={file.path}>
      <header class="card-head">
        <h2 class="mono preview-path" title={file.path}>
          {file.path}
        </h2>
        <div class="card-right">
          <span class="muted num">{size(file.size)}</span>
          <a class="btn btn-sm" href={raw} download={file.name} data-testid="download">
            Download
          </a>
        </div>
      </header>
      <div class="card-body preview-body">
        {preview.error ? <ErrorBox error={preview.error} retry={preview.reload} /> : !p ? <Loading /> : <PreviewBody owner={owner} p={p} raw={raw} />}
      </div>
    </div>
  );
}

function Cut({ shown, of }: { shown: string; of: number }) {
  return (
    <div class="preview-note" data-testid="truncated">
      Showing {shown} of {size(of)}; download the file for the rest.
    </div>
  );
}

function PreviewBody({ owner, p, raw }: { owner: ArtifactOwner; p: Preview; raw: string }) {
  switch (p.kind) {
    case "table":
      return (
        <>
          <SortableTable columns={p.columns} rows={p.rows} />
          <div class="preview-note" data-testid={p.truncated ? "truncated" : "table-note"}>
            {p.truncated ? `The first ${plural(p.rows.length, "row")} of a longer file (the preview reads its first 256 KB, 200 rows and 200 columns at most).` : plural(p.rows.length, "row")}
          </div>
        </>
      );
    case "text":
      return <TextPreview owner={owner} p={p} />;
    case "html":
      return <HtmlPreview text={p.text} truncated={p.truncated} size={p.size} />;
    case "image":
      return <ImagePreview src={raw} path={p.path} />;
    case "parquet":
      return <ParquetPreview src={raw} />;
    case "none":
      return <Unshown title="No preview">{p.reason}</Unshown>;
    default:
      return <Unshown title="No preview">This file's kind ({(p as { kind: string }).kind}) is not one the dashboard shows.</Unshown>;
  }
}

function TextPreview({ owner, p }: { owner: ArtifactOwner; p: Extract<Preview, { kind: "text" }> }) {
  const pretty = useMemo(() => {
    if (p.format !== "json") return null;
    try {
      return JSON.stringify(JSON.parse(p.text), null, 2);
    } catch {
      return null;
    }
  }, [p.text, p.format]);
  const note = p.truncated ? <Cut shown="the first 256 KB" of={p.size} /> : null;
  if (p.format === "markdown")
    return (
      <>
        <Markdown text={p.text} class="preview-markdown" />
        {note}
      </>
    );
  if (p.format === "mlmodel")
    return (
      <>
        <ModelCard owner={owner} folder={dirname(p.path)} text={p.text} />
        <details class="raw-text">
          <summary>MLmodel as written</summary>
          <pre class="preview-text mono">{p.text}</pre>
        </details>
      </>
    );
  return (
    <>
      {p.format === "json" && pretty === null && (
        <div class="preview-note">{p.truncated ? "Cut short, so not parsed: shown as written." : "Not valid JSON: shown as written."}</div>
      )}
      <pre class={`preview-text mono fmt-${p.format}`} data-testid="preview-text" data-pretty={pretty !== null ? "1" : undefined}>
        {pretty ?? p.text}
      </pre>
      {note}
    </>
  );
}

function HtmlPreview({ text, truncated, size: bytes }: { text: string; truncated: boolean; size: number }) {
  const doc = useMemo(() => previewDocument(text), [text]);
  const frame = useRef<HTMLIFrameElement>(null);
  // Set as a property: a style attribute would be refused by the CSP.
  useLayoutEffect(() => {
    if (frame.current) frame.current.style.height = `${frameHeight(doc)}px`;
  }, [doc]);
  return (
    <>
      <div class="preview-note">Shown in a sandbox: its scripts do not run, and its own styles and remote images are left out.</div>
      {/* No allow-scripts: nothing in the file runs; an opaque origin: it
          reaches neither this page nor the API. */}
      <iframe ref={frame} class="html-frame" sandbox="" srcdoc={doc} title="HTML preview" referrerpolicy="no-referrer" data-testid="html-frame" />
      {truncated && <Cut shown="the first 256 KB" of={bytes} />}
    </>
  );
}

function ImagePreview({ src, path }: { src: string; path: string }) {
  const [state, setState] = useState<{ w: number; h: number } | "error" | null>(null);
  if (state === "error") return <Unshown title="This image could not be shown">The browser could not decode {path}; download it to look at it.</Unshown>;
  return (
    <div class="image-preview">
      <img
        src={src}
        alt={path}
        data-testid="preview-image"
        onLoad={(e) => {
          const img = e.currentTarget as HTMLImageElement;
          setState({ w: img.naturalWidth, h: img.naturalHeight });
        }}
        onError={() => setState("error")}
      />
      {state && <div class="preview-note num">{`${state.w} × ${state.h} px`}</div>}
    </div>
  );
}

function ParquetPreview({ src }: { src: string }) {
  const table = useAsync(async (signal): Promise<ParquetTable> => {
    // A Range header makes the browser ask for the bytes as stored
    // (`Accept-Encoding: identity`): the server's gzip layer cuts a raw
    // file's stream short. The whole file is asked for, so a server that
    // honours ranges answers 206 with the same bytes.
    const [{ readParquet }, res] = await Promise.all([import("../parquet"), fetch(src, { signal, headers: { Range: "bytes=0-" } })]);
    if (!res.ok) throw new Error(`the file could not be fetched (${res.status})`);
    const buf = await res.arrayBuffer();
    try {
      return await readParquet(buf, PARQUET_ROWS);
    } catch (e) {
      throw new Error(e instanceof Error ? e.message : String(e));
    }
  }, [src]);
  if (table.error) return <Unshown title="This Parquet file could not be read">{table.error.message}</Unshown>;
  if (!table.data) return <Loading label="Reading the Parquet file…" />;
  const t = table.data;
  return (
    <>
      <SortableTable columns={t.columns} rows={t.rows} types={t.types} />
      <div class="preview-note" data-testid={t.total > t.rows.length ? "truncated" : "table-note"}>
        {t.total > t.rows.length ? `The first ${plural(t.rows.length, "row")} of ${t.total.toLocaleString("en-US")}.` : plural(t.total, "row")}
      </div>
    </>
  );
}

/** A number as a table cell holds it, or null. */
function asNumber(s: string): number | null {
  if (s.trim() === "") return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
}

/** The first rows of a table, sorted by a click on a column's head (again
 * for the other direction); numbers sort as numbers, empty cells last. */
export function SortableTable({ columns, rows, types }: { columns: string[]; rows: string[][]; types?: string[] }) {
  const [sort, setSort] = useState<{ col: number; desc: boolean } | null>(null);
  const numeric = useMemo(() => columns.map((_, c) => rows.some((r) => (r[c] ?? "") !== "") && rows.every((r) => (r[c] ?? "") === "" || asNumber(r[c]) !== null)), [columns, rows]);
  const sorted = useMemo(() => {
    if (!sort) return rows;
    const { col, desc } = sort;
    const dir = desc ? -1 : 1;
    return [...rows].sort((a, b) => {
      const x = a[col] ?? "";
      const y = b[col] ?? "";
      if (x === "" || y === "") return x === y ? 0 : x === "" ? 1 : -1;
      if (numeric[col]) return ((asNumber(x) ?? 0) - (asNumber(y) ?? 0)) * dir;
      return x.localeCompare(y) * dir;
    });
  }, [rows, sort, numeric]);
  return (
    <div class="preview-table-wrap">
      <table class="table preview-table" data-testid="preview-table">
        <thead>
          <tr>
            {columns.map((c, i) => {
              const active = sort?.col === i;
              return (
                <th key={i} class={numeric[i] ? "num" : ""} aria-sort={active ? (sort?.desc ? "descending" : "ascending") : "none"} data-col={i}>
                  <button class="th-btn" onClick={() => setSort(active && !sort?.desc ? { col: i, desc: true } : active ? null : { col: i, desc: false })} title={`Sort by ${c}${types?.[i] ? ` (${types[i]})` : ""}`}>
                    {c}
                    <span class="sort-ind">{active ? (sort?.desc ? "↓" : "↑") : ""}</span>
                  </button>
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {sorted.map((r, i) => (
            <tr key={i}>
              {columns.map((_, c) => (
                <td key={c} class={numeric[c] ? "num" : ""}>
                  {r[c] ?? ""}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** An MLflow model folder: its flavors, signature and input example, read
 * from MLmodel (given, or fetched) and the example file it names. */
export function ModelCard({ owner, folder, text }: { owner: ArtifactOwner; folder: string; text?: string }) {
  const join = (name: string) => (folder ? `${folder}/${name}` : name);
  const model = useAsync(async (signal): Promise<MlModel> => {
    const [{ readMlModel }, src] = await Promise.all([
      import("../mlmodel"),
      text !== undefined ? Promise.resolve(text) : api.preview(owner, join("MLmodel"), signal).then((p) => (p.kind === "text" ? p.text : Promise.reject(new Error(p.kind === "none" ? p.reason : "MLmodel is not text")))),
    ]);
    return readMlModel(src);
  }, [owner.kind, owner.id, folder, text ?? ""]);
  const m = model.data;
  return (
    <section class="card model-card" data-testid="model-card">
      <header class="card-head">
        <h2>MLflow model{folder ? <span class="mono muted"> {folder}/</span> : null}</h2>
        {m && m.facts.length > 0 && (
          <div class="card-right muted small">
            {m.facts
              .filter(([k]) => k === "MLflow" || k === "Size")
              .map(([k, v]) => (k === "Size" ? size(Number(v)) : `MLflow ${v}`))
              .join(" · ")}
          </div>
        )}
      </header>
      <div class="card-body">
        {model.error ? (
          <Unshown title="MLmodel could not be read">{model.error.message}</Unshown>
        ) : !m ? (
          <Loading />
        ) : (
          <div class="model-grid">
            <div>
              <h3 class="mini-head">Flavors</h3>
              {m.flavors.length === 0 ? (
                <p class="muted">None listed.</p>
              ) : (
                <ul class="flavors" data-testid="flavors">
                  {m.flavors.map((f) => (
                    <li key={f.name} data-flavor={f.name}>
                      <span class="flavor-name mono">{f.name}</span>
                      <span class="muted small">
                        {f.details
                          .filter(([k]) => /version|loader_module|serialization_format|predict_fn|model_path|pickled_model/.test(k))
                          .map(([k, v]) => `${k} ${v}`)
                          .join(" · ")}
                      </span>
                    </li>
                  ))}
                </ul>
              )}
            </div>
            <div>
              <h3 class="mini-head">Signature</h3>
              {!m.inputs && !m.outputs ? (
                <p class="muted">No signature recorded.</p>
              ) : (
                <div class="signature" data-testid="signature">
                  <SpecTable title="Inputs" rows={m.inputs} />
                  <SpecTable title="Outputs" rows={m.outputs} />
                  {m.params && <SpecTable title="Params" rows={m.params} />}
                </div>
              )}
            </div>
            <div class="model-example">
              <h3 class="mini-head">Input example</h3>
              {m.example ? <InputExample owner={owner} path={join(m.example)} names={(m.inputs ?? []).map((r) => r.name).filter(Boolean)} /> : <p class="muted">No input example saved with this model.</p>}
            </div>
          </div>
        )}
      </div>
    </section>
  );
}

function SpecTable({ title, rows }: { title: string; rows: MlModel["inputs"] }) {
  return (
    <div class="spec" data-spec={title.toLowerCase()}>
      <div class="spec-title">{title}</div>
      {!rows || rows.length === 0 ? (
        <div class="muted small">none</div>
      ) : (
        <table class="table spec-table">
          <tbody>
            {rows.map((r, i) => (
              <tr key={i}>
                {r.name && <td class="mono">{r.name}</td>}
                <td class="mono">{r.type}</td>
                <td class="muted mono">{r.detail}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function InputExample({ owner, path, names }: { owner: ArtifactOwner; path: string; names: string[] }) {
  const ex = useAsync((signal) => api.preview(owner, path, signal), [owner.kind, owner.id, path]);
  if (ex.error) return <Unshown title={`${path} could not be read`}>{ex.error.message}</Unshown>;
  if (!ex.data) return <Loading />;
  const p = ex.data;
  if (p.kind !== "text") return <Unshown title="No preview">{p.kind === "none" ? p.reason : `${path} is not text`}</Unshown>;
  let value: unknown;
  try {
    value = JSON.parse(p.text);
  } catch {
    return <pre class="preview-text mono">{p.text}</pre>;
  }
  const t = exampleTable(value, names);
  return (
    <div data-testid="input-example">
      {t ? <SortableTable columns={t.columns} rows={t.rows.slice(0, 50)} /> : <pre class="preview-text mono">{JSON.stringify(value, null, 2)}</pre>}
      <div class="preview-note mono">{path}</div>
    </div>
  );
}
