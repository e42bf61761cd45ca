// A tiny history-API router. All view state lives in the URL: the path picks
// the page, query parameters hold filters, sorting, selection and chart
// settings, so any view can be bookmarked and shared.
import { useEffect, useState } from "preact/hooks";

export type Page = "projects" | "runs" | "charts" | "run" | "compare" | "parallel" | "scatter" | "notebook" | "models" | "model" | "artifacts" | "artifact" | "replay" | "sweeps" | "sweep" | "report" | "notfound";
/** `version` is a registered model's version, or an artifact's (`v3` or an
 * alias; absent for its latest). A replay's view names the original run
 * (`runId`) and its replay (`replayId`); a sweep's or study's page its id
 * (`study`). */
export type Route = { page: Page; project?: string; runId?: string; replayId?: string; model?: string; artifact?: string; version?: string; study?: string };

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function parsePath(pathname: string): Route {
  const parts = pathname.split("/").filter(Boolean).map(decode);
  if (parts.length === 0) return { page: "projects" };
  if (parts[0] === "models") {
    if (parts.length === 1) return { page: "models" };
    if (parts.length === 2) return { page: "model", model: parts[1] };
    if (parts.length === 4 && parts[2] === "versions") return { page: "model", model: parts[1], version: parts[3] };
    return { page: "notfound" };
  }
  if (parts[0] !== "p" || parts.length < 2) return { page: "notfound" };
  const project = parts[1];
  if (parts.length === 2) return { page: "runs", project };
  const sub = parts[2];
  if (sub === "run" && parts.length === 4) return { page: "run", project, runId: parts[3] };
  if (sub === "replay" && parts.length === 5) return { page: "replay", project, runId: parts[3], replayId: parts[4] };
  if (sub === "sweep" && parts.length === 4) return { page: "sweep", project, study: parts[3] };
  if (sub === "artifacts") {
    if (parts.length === 3) return { page: "artifacts", project };
    if (parts.length === 4) return { page: "artifact", project, artifact: parts[3] };
    if (parts.length === 5) return { page: "artifact", project, artifact: parts[3], version: parts[4] };
    return { page: "notfound" };
  }
  if (parts.length === 3 && ["charts", "compare", "parallel", "scatter", "notebook", "runs", "sweeps", "report"].includes(sub)) {
    return { page: (sub === "runs" ? "runs" : sub) as Page, project };
  }
  return { page: "notfound" };
}

export function projectPath(project: string, sub?: string): string {
  return `/p/${encodeURIComponent(project)}${sub ? `/${sub}` : ""}`;
}

export function runPath(project: string, id: string): string {
  return `${projectPath(project, "run")}/${encodeURIComponent(id)}`;
}

/** A replay beside the run it replays: the check, both curves, what differs. */
export function replayPath(project: string, original: string, replay: string): string {
  return `${projectPath(project, "replay")}/${encodeURIComponent(original)}/${encodeURIComponent(replay)}`;
}

/** A sweep's or study's page. */
export function sweepPath(project: string, id: string): string {
  return `${projectPath(project, "sweep")}/${encodeURIComponent(id)}`;
}

/** A project's artifacts, a name's latest version, or one version (`v3`
 * or an alias). */
export function artifactPath(project: string, name?: string, version?: number | string): string {
  const base = projectPath(project, "artifacts");
  if (name === undefined) return base;
  const v = version === undefined ? "" : `/${encodeURIComponent(typeof version === "number" ? `v${version}` : version)}`;
  return `${base}/${encodeURIComponent(name)}${v}`;
}

export function modelPath(name?: string, version?: number | string): string {
  if (name === undefined) return "/models";
  return `/models/${encodeURIComponent(name)}${version !== undefined ? `/versions/${encodeURIComponent(String(version))}` : ""}`;
}

type Listener = () => void;
const listeners = new Set<Listener>();
function emit() {
  for (const l of listeners) l();
}
window.addEventListener("popstate", emit);
// A pasted MLflow link (below) changes only the hash.
window.addEventListener("hashchange", emit);

/** A link the `mlflow` client prints: `#/experiments/<id>` or
 * `#/experiments/<id>/runs/<run id>` (anything after the run id, like
 * MLflow's `/artifacts/...`, is ignored), and the registry's
 * `#/models/<name>` and `#/models/<name>/versions/<v>`. */
export type MlflowLink = { experiment: string; run?: string } | { model: string; version?: string };

export function parseMlflowHash(hash: string): MlflowLink | null {
  const m = /^#\/experiments\/([^/?#]+)(?:\/runs\/([^/?#]+))?(?:[/?].*)?$/.exec(hash);
  if (m) return m[2] ? { experiment: decode(m[1]), run: decode(m[2]) } : { experiment: decode(m[1]) };
  const r = /^#\/models\/([^/?#]+)(?:\/versions\/([^/?#]+))?(?:[/?].*)?$/.exec(hash);
  if (r) return r[2] ? { model: decode(r[1]), version: decode(r[2]) } : { model: decode(r[1]) };
  return null;
}

export function navigate(href: string, opts: { replace?: boolean } = {}) {
  const url = new URL(href, location.href);
  // The hash counts: leaving an MLflow link (#/experiments/…) for "/" is a move.
  const cur = location.pathname + location.search + location.hash;
  const next = url.pathname + url.search + url.hash;
  if (next === cur && !opts.replace) return;
  if (opts.replace) history.replaceState(null, "", next);
  else {
    history.pushState(null, "", next);
    window.scrollTo(0, 0);
  }
  emit();
}

export type ParamPatch = Record<string, string | string[] | null | undefined>;

/** Returns the current search with `patch` applied (null removes a key). */
export function withParams(patch: ParamPatch, search: string = location.search): string {
  const sp = new URLSearchParams(search);
  for (const [k, v] of Object.entries(patch)) {
    sp.delete(k);
    if (v === null || v === undefined || v === "") continue;
    if (Array.isArray(v)) for (const x of v) sp.append(k, x);
    else sp.set(k, v);
  }
  const s = sp.toString().replace(/%2C/g, ",").replace(/%2F/g, "/");
  return s ? `?${s}` : "";
}

/** Updates query parameters. Defaults to replacing the history entry
 * (typing in a filter box should not flood the back button). */
export function setParams(patch: ParamPatch, opts: { push?: boolean } = {}) {
  navigate(location.pathname + withParams(patch), { replace: !opts.push });
}

export function useLocation(): { route: Route; params: URLSearchParams; href: string; hash: string } {
  const [, setTick] = useState(0);
  const rendered = location.href;
  useEffect(() => {
    const l = () => setTick((t) => t + 1);
    listeners.add(l);
    // Children's effects run first: one may have navigated (a redirect)
    // before this listener was there to hear it.
    if (location.href !== rendered) l();
    return () => {
      listeners.delete(l);
    };
  }, []);
  return { route: parsePath(location.pathname), params: new URLSearchParams(location.search), href: location.href, hash: location.hash };
}

/** Intercepts a plain left click on an in-app link. */
export function onLinkClick(e: MouseEvent) {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = (e.target as Element | null)?.closest?.("a");
  if (!a || a.target || a.hasAttribute("download")) return;
  const href = a.getAttribute("href");
  if (!href || href.startsWith("http") || href.startsWith("#") || href.startsWith("/api/")) return;
  e.preventDefault();
  navigate(href);
}

/** Comma-separated id list parameter. */
export function listParam(params: URLSearchParams, key: string): string[] {
  const v = params.get(key);
  return v ? v.split(",").filter(Boolean) : [];
}
