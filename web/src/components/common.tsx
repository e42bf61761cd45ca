import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Status } from "../api";
import { ApiError } from "../api";

export type Async<T> = { data: T | undefined; error: Error | undefined; loading: boolean; reload: () => void };

/** Runs `fn` whenever `deps` change, dropping stale answers. */
export function useAsync<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: Error; loading: boolean }>({ loading: true });
  const [nonce, setNonce] = useState(0);
  // A layout effect: the request leaves as soon as the component is in the
  // DOM, not after the browser's next paint (when preact runs useEffect).
  useLayoutEffect(() => {
    const ctl = new AbortController();
    setState((s) => (s.loading && !s.error ? s : { data: s.data, loading: true }));
    fn(ctl.signal).then(
      (data) => {
        if (!ctl.signal.aborted) setState({ data, loading: false });
      },
      (error: unknown) => {
        if (!ctl.signal.aborted) setState({ error: error instanceof Error ? error : new Error(String(error)), loading: false });
      },
    );
    return () => ctl.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, nonce]);
  return { data: state.data, error: state.error, loading: state.loading, reload: () => setNonce((n) => n + 1) };
}

export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setV(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return v;
}

/** Re-renders every `ms` (relative times, running durations). */
export function useTicker(ms: number): number {
  const [t, setT] = useState(Date.now());
  useEffect(() => {
    const i = setInterval(() => setT(Date.now()), ms);
    return () => clearInterval(i);
  }, [ms]);
  return t;
}

export function useElementWidth<T extends HTMLElement>(): [preact.RefObject<T>, number] {
  const ref = useRef<T>(null);
  const [w, setW] = useState(0);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    setW(el.clientWidth);
    const ro = new ResizeObserver(() => setW(el.clientWidth));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  return [ref, w];
}

export function StatusPill({ status }: { status: Status | string }) {
  return (
    <span class={`pill pill-${status}`} data-status={status}>
      <span class="dot" />
      {status}
    </span>
  );
}

export function Tags({ tags }: { tags: string[] }) {
  return (
    <span class="tags">
      {tags.map((t) => (
        <span class="tag" key={t}>
          {t}
        </span>
      ))}
    </span>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <div class="empty-title">{title}</div>
      {children && <div class="empty-body">{children}</div>}
    </div>
  );
}

/** Whether asking again could help: the server was unreachable or failed
 * (or the error is not the API's). A 4xx answer is the same every time. */
export function isTransient(error: Error): boolean {
  return !(error instanceof ApiError) || error.status === 0 || error.status >= 500;
}

/** A filter or sort the server refused (the filter box shows why). */
export function isQueryError(error: Error | null | undefined): boolean {
  return error instanceof ApiError && error.code === "INVALID_QUERY";
}

export function ErrorBox({ error, retry }: { error: Error; retry?: () => void }) {
  const code = error instanceof ApiError ? error.code : undefined;
  const title = code === "NOT_FOUND" ? "Not found" : code === "INVALID_QUERY" ? "Invalid query" : isTransient(error) ? "Something went wrong" : "The server refused the request";
  return (
    <div class="error-box" role="alert">
      <div>
        <strong>{title}</strong>
        <div class="error-msg">{error.message}</div>
      </div>
      {retry && isTransient(error) && (
        <button class="btn" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

export function Loading({ label = "Loading…" }: { label?: string }) {
  return (
    <div class="loading">
      <span class="spinner" />
      {label}
    </div>
  );
}

type Renderer = (text: string) => string;
let renderer: Renderer | null = null;
let loading: Promise<Renderer> | null = null;
function loadRenderer(): Promise<Renderer> {
  loading ??= import("../markdown").then((m) => (renderer = m.renderMarkdown));
  return loading;
}

/** Sanitized Markdown (marked + DOMPurify, loaded on first use); plain text
 * until the renderer is there. */
export function Markdown({ text, class: cls }: { text: string; class?: string }) {
  const [ready, setReady] = useState(renderer !== null);
  useEffect(() => {
    if (!ready) loadRenderer().then(() => setReady(true), () => undefined);
  }, []);
  const html = useMemo(() => (ready && renderer ? renderer(text) : null), [text, ready]);
  if (html === null) return <div class={`markdown ${cls ?? ""}`} style={{ whiteSpace: "pre-wrap" }}>{text}</div>;
  return <div class={`markdown ${cls ?? ""}`} dangerouslySetInnerHTML={{ __html: html }} />;
}

/** A module loaded on first use, as its own chunk (pages most visits never
 * open stay out of the first load). Returns a hook: the module once it is
 * there, or the error that kept it away (the next mount tries again). */
export function lazyModule<M>(load: () => Promise<M>): () => { module: M | null; error: Error | null } {
  let loaded: M | null = null;
  let pending: Promise<M> | null = null;
  return function useLazyModule() {
    const [, setTick] = useState(0);
    const [error, setError] = useState<Error | null>(null);
    useLayoutEffect(() => {
      if (loaded) return;
      let live = true;
      pending ??= load().then(
        (m) => (loaded = m),
        (e: unknown) => {
          pending = null;
          throw e;
        },
      );
      pending.then(
        () => live && setTick((t) => t + 1),
        (e: unknown) => live && setError(e instanceof Error ? e : new Error(String(e))),
      );
      return () => {
        live = false;
      };
    }, []);
    return { module: loaded, error };
  };
}

export function Section({ title, right, children, id }: { title: ComponentChildren; right?: ComponentChildren; children: ComponentChildren; id?: string }) {
  return (
    <section class="card" id={id}>
      <header class="card-head">
        <h2>{title}</h2>
        {right && <div class="card-right">{right}</div>}
      </header>
      <div class="card-body">{children}</div>
    </section>
  );
}

/** Closes a popover when clicking outside or pressing Escape. */
export function useDismiss(open: boolean, close: () => void) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!open) return;
    const onDown = (e: MouseEvent) => {
      if (ref.current && !ref.current.contains(e.target as Node)) close();
    };
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") close();
    };
    document.addEventListener("mousedown", onDown);
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("mousedown", onDown);
      document.removeEventListener("keydown", onKey);
    };
  }, [open]);
  return ref;
}

export type ToastMsg = { id: number; text: string; action?: { label: string; run: () => void } };
const toastListeners = new Set<(t: ToastMsg[]) => void>();
let toasts: ToastMsg[] = [];
let toastId = 0;

export function toast(text: string, action?: ToastMsg["action"], ms = 8000) {
  const t = { id: ++toastId, text, action };
  toasts = [...toasts, t];
  toastListeners.forEach((l) => l(toasts));
  setTimeout(() => dismissToast(t.id), ms);
}

function dismissToast(id: number) {
  toasts = toasts.filter((x) => x.id !== id);
  toastListeners.forEach((l) => l(toasts));
}

export function Toasts() {
  const [list, setList] = useState<ToastMsg[]>(toasts);
  useEffect(() => {
    toastListeners.add(setList);
    return () => {
      toastListeners.delete(setList);
    };
  }, []);
  return (
    <div class="toasts">
      {list.map((t) => (
        <div class="toast" key={t.id}>
          <span>{t.text}</span>
          {t.action && (
            <button
              class="btn btn-link"
              onClick={() => {
                t.action?.run();
                dismissToast(t.id);
              }}
            >
              {t.action.label}
            </button>
          )}
          <button class="icon-btn" aria-label="Dismiss" onClick={() => dismissToast(t.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

/** labbook's mark: a rising curve on the accent color. */
export function Logo({ size = 20 }: { size?: number }) {
  return (
    <svg class="logo" width={size} height={size} viewBox="0 0 24 24" aria-hidden="true">
      <rect x="2" y="2" width="20" height="20" rx="5" fill="var(--accent)" />
      <path d="M6 16.5l3.5-4 3 2.5L18 8" fill="none" stroke="#fff" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" />
    </svg>
  );
}
