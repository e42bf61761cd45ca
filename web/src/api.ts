// The dashboard's JSON API (docs/API.md): types and fetch helpers.

export type Num = number | "NaN" | "Infinity" | "-Infinity";
export type ConfigValue = null | boolean | number | string | ConfigValue[] | { [k: string]: ConfigValue };
export type MetricSummary = { count: number; last: Num; last_step: number; min: Num | null; max: Num | null };
export type Status = "running" | "finished" | "failed" | "killed" | "crashed" | "pruned";

export type Run = {
  id: string;
  name: string;
  project: string;
  group: string | null;
  tags: string[];
  notes: string | null;
  status: Status;
  created_ms: number;
  ended_ms: number | null;
  heartbeat_ms: number;
  duration_ms: number;
  exit_code: number | null;
  error: string | null;
  host: string | null;
  pid: number | null;
  config: { [dottedKey: string]: ConfigValue };
  metrics: { [key: string]: MetricSummary };
  summary: { [key: string]: ConfigValue };
  deleted: boolean;
  /** Key/value tags (MLflow's run tags, `mlflow.*` among them). */
  kv_tags: { [key: string]: string };
  /** Datasets the run used. */
  inputs: DatasetInput[];
  /** The run it is nested under (MLflow's `mlflow.parentRunId`), which may
   * be missing, deleted, or (through tags) form a cycle. */
  parent: string | null;
};

export type DatasetInput = {
  name: string;
  digest: string;
  source_type: string;
  source: string;
  schema?: string;
  profile?: string;
  tags?: { [key: string]: string };
};

/** A model the run logged (MLflow's logged model). */
export type LoggedModel = {
  model_id: string;
  step: number;
  name: string;
  model_type: string | null;
  params: { [key: string]: string };
  registered: { name: string; version: number }[];
};

export type GitInfo = {
  commit?: string | null;
  branch?: string | null;
  remote_url?: string | null;
  dirty?: boolean;
  diff?: string | null;
  diff_truncated?: boolean;
  /** Changed files named like secrets (`.env`, `*.pem`), left out of `diff`. */
  diff_excluded?: string[];
  untracked?: string[];
  root?: string;
};

export type Environment = {
  command?: string[];
  cwd?: string;
  host?: string;
  user?: string;
  os?: string;
  kernel?: string;
  arch?: string;
  cpu_model?: string;
  cpu_count?: number;
  memory_bytes?: number;
  /** The capture writes `driver_version` and `cuda_version`. */
  gpus?: { name?: string; memory_bytes?: number; driver_version?: string; cuda_version?: string; driver?: string; cuda?: string; [k: string]: unknown }[];
  python?: { version?: string; executable?: string; implementation?: string; packages?: { name: string; version: string }[] };
  git?: GitInfo | null;
  env_vars?: { [k: string]: string };
  seed?: { key?: string; value?: unknown } | null;
  /** The run's code snapshot (changed and untracked files, as an artifact
   * version). */
  code?: CodeSnapshot | null;
  /** A replay's record: the run it replays, where its code was rebuilt,
   * what `--set` changed, the drift `labbook replay` noticed. */
  replay?: { of?: string; dir?: string; set?: string[]; drift?: string[]; data_drift?: boolean } | null;
  errors?: unknown[];
  [k: string]: unknown;
};

export type CodeSnapshot = {
  base?: string;
  root?: string;
  /** `code:v3`; absent when there were no files to keep. */
  version?: string;
  digest?: string;
  files?: number;
  bytes?: number;
  deleted?: string[];
  skipped?: { path: string; reason: string }[];
  error?: string;
};

export type RunDetail = Run & {
  environment: Environment | null;
  notebook: { created_ms: number; text: string }[];
  metric_keys: { key: string; count: number }[];
  outputs: LoggedModel[];
};

export type ArtifactFile = { path: string; name: string; is_dir: boolean; size: number | null };
export type ArtifactListing = { path: string; files: ArtifactFile[] };
export type TextFormat = "json" | "yaml" | "markdown" | "mlmodel" | "text";
/** What the page shows of a file, from its first 256 KB (docs/API.md). */
export type Preview = { path: string; size: number } & (
  | { kind: "table"; columns: string[]; rows: string[][]; truncated: boolean }
  | { kind: "text"; format: TextFormat; text: string; truncated: boolean }
  | { kind: "html"; text: string; truncated: boolean }
  | { kind: "image"; media_type: string }
  | { kind: "parquet" }
  | { kind: "none"; reason: string }
);

/** Whose files: a run's, or a logged model's. */
export type ArtifactOwner = { kind: "run" | "model"; id: string };

export type ModelVersion = {
  version: number;
  stage: string | null;
  source: string | null;
  run_id: string | null;
  run_name: string | null;
  project: string | null;
  model_id: string | null;
  description: string | null;
  tags: { [key: string]: string };
  aliases: string[];
  created_ms: number;
  updated_ms: number;
};
export type RegisteredModel = {
  name: string;
  description: string | null;
  tags: { [key: string]: string };
  aliases: { [alias: string]: number };
  created_ms: number;
  updated_ms: number;
  /** Newest first. */
  versions: ModelVersion[];
};

/** A run as the artifact answers name it: everything but the id is null
 * once the store no longer holds the run. */
export type RunRef = { id: string; name: string | null; project: string | null; status: Status | null; deleted: boolean };

/** A version of a named artifact (docs/API.md, "Versioned artifacts"). */
export type ArtifactVersion = {
  project: string;
  name: string;
  type: string;
  /** 0, 1, …: `v0` is the first. */
  version: number;
  /** `name:v3`. */
  ref: string;
  digest: string;
  size: number;
  file_count: number;
  aliases: string[];
  description: string | null;
  created_ms: number;
  deleted_ms: number | null;
  /** Deleted, and its files freed by `labbook gc`. */
  purged: boolean;
};
export type ArtifactName = {
  name: string;
  type: string;
  /** Live versions. */
  versions: number;
  latest: number | null;
  latest_size: number;
  aliases: { [alias: string]: number };
  updated_ms: number;
};
export type ArtifactNames = { project: string; types: string[]; total: number; offset: number; artifacts: ArtifactName[] };
export type ArtifactVersions = {
  project: string;
  name: string;
  type: string;
  total: number;
  offset: number;
  /** Newest first, deleted ones included. */
  versions: (ArtifactVersion & { producer: RunRef | null })[];
};
export type VersionFile = { path: string; size: number; hash: string; reference: string | null };
export type VersionRun = RunRef & { role: "input" | "output"; created_ms: number };
export type VersionDetail = ArtifactVersion & {
  metadata: { [key: string]: unknown } | null;
  producer: RunRef | null;
  files: VersionFile[];
  files_total: number;
  files_offset: number;
  files_left_out: number;
  runs: VersionRun[];
  runs_total: number;
  runs_left_out: number;
};
export type LineageNode =
  | { kind: "artifact"; id: string; project: string; name: string; version: number; type: string; digest: string; deleted: boolean }
  | { kind: "run"; id: string; name: string; project: string; status: string };
/** `from` fed `to`: an artifact a run used, a run that produced an artifact. */
export type LineageGraph = { root: string; nodes: LineageNode[]; edges: { from: string; to: string }[]; truncated: boolean };
export type RunVersions = { run: string; inputs: ArtifactVersion[]; inputs_total: number; outputs: ArtifactVersion[]; outputs_total: number };

/** A replay's verdict, one metric's or the whole check's (docs/API.md). */
export type ReplayVerdict = { state: "reproduced" } | { state: "within_tolerance" } | { state: "diverged"; step: number } | { state: "missing"; in_replay: boolean };
/** One metric of a stored replay check; a non-finite deviation or final
 * value arrives as null. */
export type ReplayMetricCheck = {
  key: string;
  verdict: ReplayVerdict;
  compared: number;
  max_abs_dev: number | null;
  max_rel_dev: number | null;
  /** The two values at the divergence step; either may be absent. */
  at_divergence?: [number | null, number | null];
  final_original: number | null;
  final_replay: number | null;
  last_step_original: number | null;
  last_step_replay: number | null;
};
export type ReplayCheck = {
  original: string;
  replay: string;
  tolerance: { rel: number; abs: number };
  verdict: ReplayVerdict;
  checked_ms: number;
  metrics: ReplayMetricCheck[];
};
/** A run as `/runs/{id}/replays` names it: `verdict` is the
 * `labbook.replay_verdict` tag's text, `set` the what-if's
 * (`lr=0.1, model.hidden=8`). */
export type ReplayBrief = { id: string; name: string; status: Status; created_ms: number; verdict: string | null; set: string | null };
export type RunReplays = {
  run: string;
  /** The run this one replays: null when it is no replay; `missing` when
   * that run is no longer in the store. */
  replay_of: ReplayBrief | { id: string; missing: true } | null;
  /** Newest first, at most 200. */
  replays: ReplayBrief[];
  replays_total: number;
  /** This run's stored check, when it is a replay that was checked. */
  check: ReplayCheck | null;
};

/** Hyperparameter searches (docs/API.md): `labbook sweep` sweeps and
 * `labbook.study()` studies, one shape for both. */
export type StudyKind = "sweep" | "study";
export type StudyState = "running" | "stopped" | "cancelled" | "finished";
export type TrialState = "complete" | "pruned" | "failed" | "crashed" | "running" | "waiting";
export type Direction = "minimize" | "maximize";
/** A parameter's search space; null where no trial recorded it. */
export type Domain =
  | { type: "float"; low: number; high: number; log: boolean; step?: number | null }
  | { type: "int"; low: number; high: number; log: boolean; step: number }
  | { type: "categorical"; choices: ConfigValue[] };
export type StudyBrief = {
  id: string;
  name: string;
  project: string;
  kind: StudyKind;
  state: StudyState;
  state_reason: string | null;
  why: string | null;
  direction: Direction;
  metric: string | null;
  method: string | null;
  created_ms: number;
  trials: number;
  /** Trials by state; a state no trial is in is absent. */
  counts: Partial<Record<TrialState, number>>;
  best: { number: number; value: number | null; run_id: string | null; params: { [name: string]: ConfigValue } } | null;
};
export type Trial = {
  number: number;
  state: TrialState;
  params: { [name: string]: ConfigValue };
  /** Null when the trial has none (or it was not finite). */
  value: number | null;
  run_id: string | null;
  grid_index: number | null;
  retry_of: number | null;
  started_ms: number | null;
  ended_ms: number | null;
  note: string | null;
  /** `trial.report(value, step)`s as [step, value], thinned to 200. */
  intermediate: [number, number | null][];
};
export type StudyDetail = {
  study: StudyBrief;
  params: { [name: string]: Domain | null };
  /** The newest 10,000. */
  trials: Trial[];
  trials_total: number;
  /** Complete trials in order, with the best value so far. */
  history: { number: number; value: number; best: number }[];
  /** Most important first, summing to 1; empty under 4 complete trials. */
  importance: { name: string; importance: number }[];
  importance_method: string;
};
export type QueueJobState = "waiting" | "running" | "complete" | "failed" | "crashed";
export type QueueJob = {
  number: number;
  state: QueueJobState;
  command: string[] | null;
  sweep: string | null;
  why: string | null;
  plan: string | null;
  gpus: number | null;
  queued_ms: number | null;
  run_id: string | null;
  started_ms: number | null;
  ended_ms: number | null;
  note: string | null;
};
export type RunBrief = { id: string; name: string; project: string; status: Status; created_ms: number; ended_ms: number | null; value: number | null };
export type ReportGroupKind = "sweep" | "study" | "why" | "none";
export type ReportGroup = {
  kind: ReportGroupKind;
  title: string;
  id: string | null;
  why: string | null;
  plan: string | null;
  counts: { [status: string]: number };
  metric: { name: string; goal: Direction } | null;
  best: RunBrief | null;
  baseline_value: number | null;
  /** best − baseline. */
  delta: number | null;
  better_than_baseline: boolean | null;
  /** The best run's curve of the metric, at most 32 values. */
  curve: number[];
  runs: RunBrief[];
};
export type Report = {
  project: string | null;
  since_ms: number;
  until_ms: number;
  counts: { [what: string]: number };
  groups: ReportGroup[];
  failures: { run: RunBrief; group: string; last_lines: string[] }[];
  running: RunBrief[];
  queue_left: { number: number; what: string; why: string | null }[];
  gpu_hours: number;
  baseline: RunBrief | null;
};

/** `id` is the project's number, its MLflow experiment id. */
export type Project = { id: number | string; name: string; runs: number; running: number; last_activity_ms: number | null };
export type RunsPage = { runs: Run[]; total: number; offset: number; limit: number };
export type Keys = {
  config: { key: string; count: number; numeric: boolean }[];
  metrics: { key: string; count: number }[];
  summary: { key: string; count: number }[];
  attributes: string[];
};
export type GroupStat = { mean: Num; std: Num; n: number };
export type Group = { value: ConfigValue; count: number; run_ids: string[]; metrics: { [key: string]: GroupStat } };
export type Groups = { by: string; groups: Group[] };
/** One curve of `/series?format=columns`: columns read in place from the
 * answer's bytes (NaN and ±Infinity are plain floats there). */
export type Series = {
  run: string;
  key: string;
  steps: Float64Array;
  ts_ms: Float64Array | null;
  values: Float64Array;
  total: number;
  downsampled: boolean;
};
export type OutputChunk = { stream: "stdout" | "stderr"; ts_ms: number; text: string };
export type NotebookEntry =
  | {
      kind: "run";
      created_ms: number;
      run: {
        id: string;
        name: string;
        group: string | null;
        status: Status;
        notes: string | null;
        duration_ms: number;
        headline: { key: string; value: Num } | null;
      };
    }
  | { kind: "note"; id: number; created_ms: number; text: string; run_id: string | null };
export type RunChange = {
  id: string;
  status: Status;
  heartbeat_ms: number;
  metrics: { [key: string]: { count: number; last_step: number } };
};

export class ApiError extends Error {
  constructor(
    message: string,
    public status: number,
    public code: string,
    public field?: string,
    public column?: number,
    /** Seconds to wait before asking again (a 429's `Retry-After`). */
    public retryAfter?: number,
  ) {
    super(message);
  }
}

/** Who is signed in (docs/API.md, "Accounts"): `auth` is false on a server
 * without accounts (`labbook ui`), where `user` is null too. */
export type SessionUser = { name: string; admin: boolean };
export type Session = { auth: boolean; user: SessionUser | null };

/** The window event sent when the server answers 401 UNAUTHENTICATED: the
 * session expired, was revoked or signed out elsewhere. */
export const SIGNED_OUT_EVENT = "labbook:signed-out";

/** Calls `fn` whenever an API call finds the session gone; returns the
 * unsubscribe. */
export function onSignedOut(fn: () => void): () => void {
  window.addEventListener(SIGNED_OUT_EVENT, fn);
  return () => window.removeEventListener(SIGNED_OUT_EVENT, fn);
}

function signedOut() {
  window.dispatchEvent(new CustomEvent(SIGNED_OUT_EVENT));
}

/** A `Retry-After` header's seconds (a number, or an HTTP date). */
function retryAfter(res: Response): number | undefined {
  const v = res.headers.get("Retry-After")?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/** A metric number from the wire: the strings become JS's non-finite numbers. */
export function num(v: Num | null | undefined | ConfigValue): number {
  if (typeof v === "number") return v;
  if (v === "NaN") return NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  return NaN;
}

export function isNum(v: unknown): v is Num {
  return typeof v === "number" || v === "NaN" || v === "Infinity" || v === "-Infinity";
}

type Params = Record<string, string | number | undefined | null | false>;

export function qs(params: Params): string {
  const sp = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === false || v === "") continue;
    sp.set(k, String(v));
  }
  const s = sp.toString();
  return s ? `?${s}` : "";
}

function parseJson(text: string): unknown {
  try {
    return text ? JSON.parse(text) : null;
  } catch {
    return null;
  }
}

/** How `send` treats an answer: `signIn` marks the sign-in itself, whose
 * 401 is a wrong password, not a session that ended. */
type SendOptions = { signIn?: boolean };

/** The response of a request that succeeded; an ApiError otherwise. A 401
 * UNAUTHENTICATED (but a sign-in's) also tells the app the session is gone
 * (onSignedOut). */
async function send(path: string, init?: RequestInit, opts?: SendOptions): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (init?.signal?.aborted) throw e;
    throw new ApiError(`cannot reach the labbook server (${String(e)})`, 0, "NETWORK");
  }
  if (!res.ok) {
    const text = await res.text();
    const body = parseJson(text);
    const err = (body as { error?: { code?: string; message?: string; field?: string; column?: number } } | null)?.error;
    const error = new ApiError(
      err?.message ?? `${res.status} ${res.statusText}${text && !body ? `: ${text.slice(0, 200)}` : ""}`,
      res.status,
      err?.code ?? "HTTP",
      err?.field,
      err?.column,
      retryAfter(res),
    );
    if (error.status === 401 && error.code === "UNAUTHENTICATED" && !opts?.signIn) signedOut();
    throw error;
  }
  return res;
}

async function request<T>(path: string, init?: RequestInit, opts?: SendOptions): Promise<T> {
  const res = await send(path, init, opts);
  return parseJson(await res.text()) as T;
}

/** Reads a `/series?format=columns` answer (docs/API.md): a JSON header,
 * then each curve's f64 columns, little-endian and 8-byte aligned, viewed
 * in place. (Every platform browsers run on is little-endian.) */
export function decodeColumns(buf: ArrayBuffer): Series[] {
  const bad = (why: string) => new ApiError(`malformed series answer: ${why}`, 0, "WIRE");
  if (buf.byteLength < 8) throw bad("too short");
  const view = new DataView(buf);
  if (view.getUint32(0, false) !== 0x4c425331) throw bad("no LBS1 mark");
  const headLen = view.getUint32(4, true);
  if (8 + headLen > buf.byteLength) throw bad("header past the end");
  const head = parseJson(new TextDecoder().decode(new Uint8Array(buf, 8, headLen))) as {
    series?: { run: string; key: string; n: number; total: number; downsampled: boolean; ts: boolean }[];
  } | null;
  if (!head?.series) throw bad("unreadable header");
  let at = Math.ceil((8 + headLen) / 8) * 8;
  const column = (n: number) => {
    if (at + n * 8 > buf.byteLength) throw bad("columns past the end");
    const col = new Float64Array(buf, at, n);
    at += n * 8;
    return col;
  };
  return head.series.map((h) => ({
    run: h.run,
    key: h.key,
    steps: column(h.n),
    ts_ms: h.ts ? column(h.n) : null,
    values: column(h.n),
    total: h.total,
    downsampled: h.downsampled,
  }));
}

const enc = encodeURIComponent;
const V1 = "/api/v1";

export const api = {
  /** Who is signed in. A 401 (UNAUTHENTICATED): the server has accounts and
   * this browser is not signed in. */
  session: (signal?: AbortSignal) => request<Session>(`${V1}/session`, { signal }),
  /** Signs in: the answer sets the session cookie. A wrong name or password
   * is a 401 UNAUTHENTICATED; too many, a 429 TOO_MANY_ATTEMPTS with
   * `retryAfter`. */
  signIn: (user: string, password: string) => request<Session>(`${V1}/session`, post({ user, password }), { signIn: true }),
  /** Ends the session and clears its cookie. */
  signOut: () => request<Session>(`${V1}/session/sign-out`, post({})),
  projects: () => request<{ projects: Project[] }>(`${V1}/projects`),
  runs: (
    project: string,
    p: { filter?: string; sort?: string; limit?: number; offset?: number; deleted?: boolean },
    signal?: AbortSignal,
  ) =>
    request<RunsPage>(
      `${V1}/projects/${enc(project)}/runs${qs({ filter: p.filter, sort: p.sort, limit: p.limit, offset: p.offset, deleted: p.deleted ? "1" : undefined })}`,
      { signal },
    ),
  /** Every match's id and parent, in the sort's order: a tree's shape. */
  runShapes: (project: string, p: { filter?: string; sort?: string; limit: number }) =>
    request<{ runs: Pick<Run, "id" | "parent">[]; total: number }>(
      `${V1}/projects/${enc(project)}/runs${qs({ filter: p.filter, sort: p.sort, limit: p.limit, fields: "id,parent" })}`,
    ),
  keys: (project: string) => request<Keys>(`${V1}/projects/${enc(project)}/keys`),
  groups: (project: string, by: string, filter?: string, signal?: AbortSignal) =>
    request<Groups>(`${V1}/projects/${enc(project)}/groups${qs({ by, filter })}`, { signal }),
  validate: (p: { filter?: string; sort?: string }, signal?: AbortSignal) =>
    request<{ ok: true }>(`${V1}/query/validate${qs(p)}`, { signal }),
  run: (id: string, signal?: AbortSignal) => request<RunDetail>(`${V1}/runs/${enc(id)}`, { signal }),
  output: (id: string) => request<{ chunks: OutputChunk[] }>(`${V1}/runs/${enc(id)}/output`),
  /** Curves of `/series`, as binary columns; an answer prefetchSeries
   * already asked for is taken instead of asking again. */
  series: (p: SeriesQuery, signal?: AbortSignal): Promise<{ series: Series[] }> => {
    const url = seriesUrl(p);
    const early = earlySeries.get(url);
    if (early) {
      earlySeries.delete(url);
      return early;
    }
    return fetchSeries(url, signal);
  },
  /** Starts a `series` request that a component about to mount will make:
   * the answer waits for it (for a while) instead of the request waiting
   * for the component. */
  prefetchSeries: (p: SeriesQuery): void => {
    const url = seriesUrl(p);
    if (earlySeries.has(url)) return;
    const answer = fetchSeries(url);
    answer.catch(() => undefined); // the taker hears it, or nobody needs it
    earlySeries.set(url, answer);
    setTimeout(() => earlySeries.get(url) === answer && earlySeries.delete(url), EARLY_SERIES_MS);
  },
  tags: (ids: string[], add: string[], remove: string[]) =>
    request<{ ok: true }>(`${V1}/runs/tags`, post({ ids, add, remove })),
  del: (ids: string[]) => request<{ ok: true }>(`${V1}/runs/delete`, post({ ids })),
  restore: (ids: string[]) => request<{ ok: true }>(`${V1}/runs/restore`, post({ ids })),
  notebook: (project: string, headline?: string) =>
    request<{ entries: NotebookEntry[] }>(`${V1}/projects/${enc(project)}/notebook${qs({ headline })}`),
  addNote: (project: string, text: string, run_id: string | null = null) =>
    request<NotebookEntry>(`${V1}/projects/${enc(project)}/notebook`, post({ text, run_id })),
  eventsUrl: (project: string) => `${V1}/events${qs({ project })}`,
  artifacts: (owner: ArtifactOwner, path: string, signal?: AbortSignal) =>
    request<ArtifactListing>(`${artifactBase(owner)}${qs({ path })}`, { signal }),
  preview: (owner: ArtifactOwner, path: string, signal?: AbortSignal) =>
    request<Preview>(`${artifactBase(owner)}/preview${qs({ path })}`, { signal }),
  /** The file itself (a download; an <img>'s source; Parquet's bytes). */
  rawUrl: (owner: ArtifactOwner, path: string) => `${artifactBase(owner)}/raw${qs({ path })}`,
  artifactNames: (project: string, type: string | null, signal?: AbortSignal) =>
    request<ArtifactNames>(`${V1}/projects/${enc(project)}/artifacts${qs({ type })}`, { signal }),
  artifactVersions: (project: string, name: string, signal?: AbortSignal) =>
    request<ArtifactVersions>(`${V1}/projects/${enc(project)}/artifacts/${enc(name)}`, { signal }),
  /** One version by number (`v3`) or alias; `offset` pages its files. */
  artifactVersion: (project: string, name: string, version: string, offset = 0, signal?: AbortSignal) =>
    request<VersionDetail>(`${versionBase(project, name, version)}${qs({ offset: offset || undefined })}`, { signal }),
  versionLineage: (project: string, name: string, version: string, signal?: AbortSignal) =>
    request<LineageGraph>(`${versionBase(project, name, version)}/lineage`, { signal }),
  runLineage: (id: string, signal?: AbortSignal) => request<LineageGraph>(`${V1}/runs/${enc(id)}/lineage`, { signal }),
  runReplays: (id: string, signal?: AbortSignal) => request<RunReplays>(`${V1}/runs/${enc(id)}/replays`, { signal }),
  runVersions: (id: string, signal?: AbortSignal) => request<RunVersions>(`${V1}/runs/${enc(id)}/artifact-versions`, { signal }),
  studies: (project: string, signal?: AbortSignal) =>
    request<{ project: string; studies: StudyBrief[] }>(`${V1}/projects/${enc(project)}/studies`, { signal }),
  study: (id: string, signal?: AbortSignal) => request<StudyDetail>(`${V1}/studies/${enc(id)}`, { signal }),
  queue: (project: string, signal?: AbortSignal) => request<{ project: string; jobs: QueueJob[] }>(`${V1}/projects/${enc(project)}/queue`, { signal }),
  report: (project: string, p: { since?: number; until?: number; metric?: string }, signal?: AbortSignal) =>
    request<Report>(`${V1}/projects/${enc(project)}/report${qs({ since: p.since, until: p.until, metric: p.metric })}`, { signal }),
  models: (signal?: AbortSignal) => request<{ models: RegisteredModel[] }>(`${V1}/models`, { signal }),
  model: (name: string, signal?: AbortSignal) => request<RegisteredModel>(`${V1}/models/${enc(name)}`, { signal }),
};

type SeriesQuery = { runs: string[]; keys: string[]; buckets?: number; lo?: number; hi?: number; after?: number; ts?: boolean };

/** Prefetched answers not yet taken, by URL; dropped after EARLY_SERIES_MS. */
const earlySeries = new Map<string, Promise<{ series: Series[] }>>();
const EARLY_SERIES_MS = 30_000;

function seriesUrl(p: SeriesQuery): string {
  return `${V1}/series${qs({
    runs: p.runs.join(","),
    keys: p.keys.join(","),
    buckets: p.buckets,
    lo: p.lo,
    hi: p.hi,
    after: p.after,
    // A step axis needs no wall times: the server then skips decoding them.
    ts: p.ts === false ? 0 : undefined,
    format: "columns",
  })}`;
}

function fetchSeries(url: string, signal?: AbortSignal): Promise<{ series: Series[] }> {
  return send(url, { signal })
    .then((res) => res.arrayBuffer())
    .then((buf) => ({ series: decodeColumns(buf) }));
}

function versionBase(project: string, name: string, version: string): string {
  return `${V1}/projects/${enc(project)}/artifacts/${enc(name)}/versions/${enc(version)}`;
}

function artifactBase(owner: ArtifactOwner): string {
  return `${V1}/${owner.kind === "run" ? "runs" : "logged-models"}/${enc(owner.id)}/artifacts`;
}

/** `(filter) and extra`, or `extra` alone. */
export function andFilter(filter: string, extra: string): string {
  return filter.trim() ? `(${filter}) and ${extra}` : extra;
}

function post(body: unknown): RequestInit {
  return { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
}

/** Fetches many runs by id in as few requests as the filter language allows. */
export async function runsByIds(project: string, ids: string[]): Promise<Run[]> {
  if (ids.length === 0) return [];
  const out: Run[] = [];
  for (let i = 0; i < ids.length; i += 200) {
    const chunk = ids.slice(i, i + 200);
    const filter = `id in (${chunk.map((id) => JSON.stringify(id)).join(", ")})`;
    const page = await api.runs(project, { filter, limit: chunk.length });
    out.push(...page.runs);
  }
  const order = new Map(ids.map((id, i) => [id, i]));
  return out.sort((a, b) => (order.get(a.id) ?? 0) - (order.get(b.id) ?? 0));
}
