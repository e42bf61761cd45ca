import { useEffect, useLayoutEffect, useState } from "preact/hooks";
import type { Session, SessionUser } from "../api";
import { api, ApiError, onSignedOut } from "../api";
import type { MlflowLink, Route } from "../router";
import { modelPath, navigate, onLinkClick, parseMlflowHash, projectPath, runPath, useLocation, withParams } from "../router";
import { currentTheme, onTheme, setTheme } from "../theme";
import { plural } from "../format";
import { Empty, ErrorBox, Loading, Logo, Toasts, lazyModule, toast, useAsync, useDismiss } from "./common";
import { SignIn } from "./SignIn";
import { ProjectsPage } from "./Projects";
import { RunsPage } from "./RunsPage";
import { ChartsPage } from "./ChartsPage";
import { RunPage } from "./RunPage";
import { ComparePage } from "./Compare";
import { ParallelPage } from "./Parallel";
import { ScatterPage } from "./Scatter";
import { NotebookPage } from "./Notebook";
import { ModelPage, ModelsPage } from "./Models";

// Artifact pages (and their lineage graphs) load on first visit.
const useVersions = lazyModule(() => import("./Versions"));
// A replay's view (its check, both curves, what differs) likewise.
const useReplayView = lazyModule(() => import("./ReplayView"));
// Sweeps and studies (their list, a search's page), and the morning report.
const useSweeps = lazyModule(() => import("./Sweeps"));
const useReport = lazyModule(() => import("./Report"));

const NAV: { page: Route["page"]; sub?: string; label: string }[] = [
  { page: "runs", label: "Runs" },
  { page: "charts", sub: "charts", label: "Charts" },
  { page: "compare", sub: "compare", label: "Compare" },
  { page: "parallel", sub: "parallel", label: "Parallel" },
  { page: "scatter", sub: "scatter", label: "Scatter" },
  { page: "sweeps", sub: "sweeps", label: "Sweeps" },
  { page: "report", sub: "report", label: "Report" },
  { page: "notebook", sub: "notebook", label: "Notebook" },
  { page: "artifacts", sub: "artifacts", label: "Artifacts" },
];

/** Parameters that follow the user from page to page within a project. */
const CARRIED = ["runs", "filter"];

/** Where the app stands with the server's accounts: `open` is a server
 * without them (`labbook ui`), where nobody signs in. */
type Auth = { state: "checking" } | { state: "failed"; error: Error } | { state: "signed-out" } | { state: "open" } | { state: "signed-in"; user: SessionUser };

function authOf(s: Session | null): Auth {
  if (!s?.auth) return { state: "open" };
  return s.user ? { state: "signed-in", user: s.user } : { state: "signed-out" };
}

const SIGNED_OUT: Auth = { state: "signed-out" };

/** Asks the server who is signed in, then shows the sign-in page or the
 * dashboard. Nothing else asks the server anything until then, and while
 * signed out no page (and no live stream) is mounted. */
export function App() {
  const [auth, setAuth] = useState<Auth>({ state: "checking" });
  const [attempt, setAttempt] = useState(0);
  // A layout effect: the question leaves before the first paint.
  useLayoutEffect(() => {
    let live = true;
    api.session().then(
      (s) => live && setAuth(authOf(s)),
      (e: unknown) => {
        if (!live) return;
        if (e instanceof ApiError && e.status === 401) setAuth(SIGNED_OUT);
        // A server from before accounts has no /session: nobody signs in.
        else if (e instanceof ApiError && e.status === 404) setAuth({ state: "open" });
        else setAuth({ state: "failed", error: e instanceof Error ? e : new Error(String(e)) });
      },
    );
    return () => {
      live = false;
    };
  }, [attempt]);
  // Any call answered 401 (the session expired, was revoked, or ended in
  // another tab) brings the sign-in page back.
  useEffect(() => onSignedOut(() => setAuth(SIGNED_OUT)), []);

  switch (auth.state) {
    case "checking":
      return (
        <div class="boot">
          <Loading />
        </div>
      );
    case "failed":
      return (
        <div class="boot">
          <div class="boot-error">
            <ErrorBox error={auth.error} retry={() => setAttempt((n) => n + 1)} />
          </div>
        </div>
      );
    case "signed-out":
      return <SignIn onSignedIn={(s) => setAuth(authOf(s))} corner={<ThemeToggle />} />;
    case "open":
      return <Dashboard user={null} onSignOut={() => undefined} />;
    case "signed-in":
      return <Dashboard user={auth.user} onSignOut={() => setAuth(SIGNED_OUT)} />;
  }
}

function Dashboard({ user, onSignOut }: { user: SessionUser | null; onSignOut: () => void }) {
  const { route, params, hash } = useLocation();
  const mlflow = parseMlflowHash(hash);
  useEffect(() => {
    document.addEventListener("click", onLinkClick);
    return () => document.removeEventListener("click", onLinkClick);
  }, []);
  useEffect(() => {
    const page = NAV.find((n) => n.page === route.page)?.label;
    const artifact = route.page === "artifact" ? `${route.artifact}:${route.version ?? "latest"} · Artifacts · ` : "";
    const sweep = route.page === "sweep" ? `${route.study} · Sweeps · ` : "";
    document.title = route.project
      ? `${route.page === "run" ? `${route.runId} · ` : route.page === "replay" ? `Replay ${route.replayId} of ${route.runId} · ` : artifact || sweep || (page ? `${page} · ` : "")}${route.project} · labbook`
      : route.page === "model"
        ? `${route.model} · Models · labbook`
        : route.page === "models"
          ? "Models · labbook"
          : "labbook";
  }, [route.page, route.project, route.runId, route.replayId, route.model, route.artifact, route.version, route.study]);

  const carried: Record<string, string | null> = {};
  for (const k of CARRIED) carried[k] = params.get(k);
  const carry = withParams(carried, "");

  return (
    <div class="app">
      <header class="topbar">
        <a class="brand" href="/">
          <Logo />
          labbook
        </a>
        {route.project && <ProjectSwitcher current={route.project} />}
        {route.project && (
          <nav class="nav">
            {NAV.map((n) => (
              <a
                key={n.label}
                class={`nav-link ${route.page === n.page || (n.page === "runs" && (route.page === "run" || route.page === "replay")) || (n.page === "artifacts" && route.page === "artifact") || (n.page === "sweeps" && route.page === "sweep") ? "active" : ""}`}
                href={projectPath(route.project ?? "", n.sub) + carry}
              >
                {n.label}
              </a>
            ))}
          </nav>
        )}
        <div class="topbar-right">
          <a class={`nav-link ${route.page === "models" || route.page === "model" ? "active" : ""}`} href={modelPath()} data-testid="nav-models">
            Models
          </a>
          <ThemeToggle />
          {user && <UserMenu user={user} onSignOut={onSignOut} />}
        </div>
      </header>
      <main class="main">
        {mlflow ? <MlflowRedirect link={mlflow} /> : <Page route={route} params={params} />}
      </main>
      <Toasts />
    </div>
  );
}

function Page({ route, params }: { route: Route; params: URLSearchParams }) {
  const p = route.project ?? "";
  switch (route.page) {
    case "projects":
      return <ProjectsPage />;
    case "runs":
      return <RunsPage project={p} params={params} />;
    case "charts":
      return <ChartsPage project={p} params={params} />;
    case "run":
      return <RunPage project={p} id={route.runId ?? ""} params={params} />;
    case "compare":
      return <ComparePage project={p} params={params} />;
    case "parallel":
      return <ParallelPage project={p} params={params} />;
    case "scatter":
      return <ScatterPage project={p} params={params} />;
    case "notebook":
      return <NotebookPage project={p} params={params} />;
    case "models":
      return <ModelsPage />;
    case "model":
      return <ModelPage name={route.model ?? ""} version={route.version} />;
    case "artifacts":
    case "artifact":
      return <ArtifactPages route={route} params={params} />;
    case "replay":
      return <ReplayPages route={route} params={params} />;
    case "sweeps":
    case "sweep":
      return <SweepPages route={route} params={params} />;
    case "report":
      return <ReportPages route={route} params={params} />;
    default:
      return (
        <div class="page">
          <div class="empty">
            <div class="empty-title">Page not found</div>
            <div class="empty-body">
              <a href="/">Go to the projects</a>
            </div>
          </div>
        </div>
      );
  }
}

function ArtifactPages({ route, params }: { route: Route; params: URLSearchParams }) {
  const { module: m, error } = useVersions();
  const project = route.project ?? "";
  if (error) return <div class="page"><ErrorBox error={error} retry={() => location.reload()} /></div>;
  if (!m) return <div class="page"><Loading /></div>;
  if (route.page === "artifacts") return <m.ArtifactsPage project={project} params={params} />;
  return <m.VersionPage project={project} name={route.artifact ?? ""} version={route.version} params={params} />;
}

function ReplayPages({ route, params }: { route: Route; params: URLSearchParams }) {
  const { module: m, error } = useReplayView();
  if (error) return <div class="page"><ErrorBox error={error} retry={() => location.reload()} /></div>;
  if (!m) return <div class="page"><Loading /></div>;
  return <m.ReplayPage project={route.project ?? ""} original={route.runId ?? ""} replay={route.replayId ?? ""} params={params} />;
}

function SweepPages({ route, params }: { route: Route; params: URLSearchParams }) {
  const { module: m, error } = useSweeps();
  if (error) return <div class="page"><ErrorBox error={error} retry={() => location.reload()} /></div>;
  if (!m) return <div class="page"><Loading /></div>;
  if (route.page === "sweeps") return <m.SweepsPage project={route.project ?? ""} />;
  return <m.SweepPage project={route.project ?? ""} id={route.study ?? ""} params={params} />;
}

function ReportPages({ route, params }: { route: Route; params: URLSearchParams }) {
  const { module: m, error } = useReport();
  if (error) return <div class="page"><ErrorBox error={error} retry={() => location.reload()} /></div>;
  if (!m) return <div class="page"><Loading /></div>;
  return <m.ReportPage project={route.project ?? ""} params={params} />;
}

/** Opens the page an MLflow link names: the run's page (its project comes
 * from the run) or the experiment's runs (the project with that number),
 * and puts the dashboard's own address in the URL bar. */
function MlflowRedirect({ link }: { link: MlflowLink }) {
  // The registry's links name the page outright: the model page says when
  // there is no such model.
  const model = "model" in link ? modelPath(link.model, link.version) : null;
  useEffect(() => {
    if (model) navigate(model, { replace: true });
  }, [model]);
  if ("model" in link) return <div class="page"><Loading label={`Opening model ${link.model}…`} /></div>;
  return <ExperimentRedirect link={link} />;
}

function ExperimentRedirect({ link }: { link: { experiment: string; run?: string } }) {
  const target = useAsync(async () => {
    if (link.run) {
      const r = await api.run(link.run);
      return runPath(r.project, r.id);
    }
    const { projects } = await api.projects();
    const p = projects.find((x) => String(x.id) === link.experiment);
    if (!p) throw new ApiError(`no experiment ${link.experiment}`, 404, "NOT_FOUND");
    return projectPath(p.name);
  }, [link.experiment, link.run ?? ""]);
  useEffect(() => {
    if (target.data) navigate(target.data, { replace: true });
  }, [target.data]);
  const err = target.error;
  if (err instanceof ApiError && err.status === 404)
    return (
      <div class="page">
        <Empty title={link.run ? `No run ${link.run}` : `No experiment ${link.experiment}`}>
          <p>This link comes from the <code>mlflow</code> client; this store has {link.run ? "no run with that id" : "no project with that experiment id"}.</p>
          <a class="btn" href="/">
            All projects
          </a>
        </Empty>
      </div>
    );
  if (err) return <div class="page"><ErrorBox error={err} retry={target.reload} /></div>;
  return (
    <div class="page">
      <Loading label={link.run ? `Opening run ${link.run}…` : `Opening experiment ${link.experiment}…`} />
    </div>
  );
}

function ProjectSwitcher({ current }: { current: string }) {
  const [open, setOpen] = useState(false);
  const ref = useDismiss(open, () => setOpen(false));
  const projects = useAsync(() => (open ? api.projects() : Promise.resolve(null)), [open]);
  return (
    <div class="switcher" ref={ref}>
      <button class="switcher-btn" onClick={() => setOpen(!open)} aria-haspopup="listbox" aria-expanded={open} data-testid="project-switcher">
        <span class="muted">/</span>
        <span class="switcher-name">{current}</span>
        <span class="chev">▾</span>
      </button>
      {open && (
        <div class="popover switcher-pop" role="listbox">
          {projects.loading && !projects.data && <div class="pop-item muted">Loading…</div>}
          {projects.data?.projects.map((p) => (
            <button
              key={p.name}
              class={`pop-item ${p.name === current ? "active" : ""}`}
              onClick={() => {
                setOpen(false);
                navigate(projectPath(p.name));
              }}
            >
              <span>{p.name}</span>
              <span class="muted num">{plural(p.runs, "run")}</span>
            </button>
          ))}
          <a class="pop-item pop-foot" href="/" onClick={() => setOpen(false)}>
            All projects
          </a>
        </div>
      )}
    </div>
  );
}

/** Who is signed in, and the way out. */
function UserMenu({ user, onSignOut }: { user: SessionUser; onSignOut: () => void }) {
  const [busy, setBusy] = useState(false);
  const signOut = () => {
    setBusy(true);
    api.signOut().then(onSignOut, (e: unknown) => {
      setBusy(false);
      // A 401 already brought the sign-in page back (the session was gone).
      if (!(e instanceof ApiError && e.status === 401)) toast(`Could not sign out: ${e instanceof Error ? e.message : String(e)}`);
    });
  };
  return (
    <div class="user-menu" data-testid="user-menu">
      <span class="user-id" title={user.admin ? `Signed in as ${user.name} (admin)` : `Signed in as ${user.name}`}>
        <span class="avatar" aria-hidden="true">
          {[...user.name][0]?.toUpperCase() ?? "?"}
        </span>
        <span class="user-name" data-testid="user-name">
          {user.name}
        </span>
        {user.admin && (
          <span class="badge" data-testid="user-admin">
            admin
          </span>
        )}
      </span>
      <button class="btn btn-sm btn-ghost sign-out" onClick={signOut} disabled={busy} data-testid="sign-out">
        Sign out
      </button>
    </div>
  );
}

function ThemeToggle() {
  const [theme, set] = useState(currentTheme());
  useEffect(() => onTheme(set), []);
  const next = theme === "dark" ? "light" : "dark";
  return (
    <button class="icon-btn theme-toggle" onClick={() => setTheme(next)} title={`Switch to the ${next} theme`} aria-label={`Switch to the ${next} theme`} data-testid="theme-toggle">
      {theme === "dark" ? (
        <svg width="16" height="16" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round">
          <circle cx="12" cy="12" r="4" />
          <path d="M12 2v2M12 20v2M4.9 4.9l1.4 1.4M17.7 17.7l1.4 1.4M2 12h2M20 12h2M4.9 19.1l1.4-1.4M17.7 6.3l1.4-1.4" />
        </svg>
      ) : (
        <svg width="16" height="16" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">
          <path d="M21 12.8A9 9 0 1 1 11.2 3a7 7 0 0 0 9.8 9.8z" />
        </svg>
      )}
    </button>
  );
}
