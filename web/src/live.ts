// Live updates: one EventSource per project, shared by every view that
// listens. The server sends `runs` events listing only the runs that changed.
import { useEffect, useRef } from "preact/hooks";
import type { RunChange } from "./api";
import { api } from "./api";

type Listener = (changes: RunChange[]) => void;
type Conn = { es: EventSource | null; listeners: Set<Listener>; retry?: ReturnType<typeof setTimeout> };
const conns = new Map<string, Conn>();

function open(project: string, conn: Conn) {
  if (typeof EventSource === "undefined") return;
  const es = new EventSource(api.eventsUrl(project));
  conn.es = es;
  es.addEventListener("runs", (ev) => {
    let changes: RunChange[] = [];
    try {
      changes = (JSON.parse((ev as MessageEvent<string>).data) as { runs: RunChange[] }).runs ?? [];
    } catch {
      return;
    }
    if (changes.length) for (const l of conn.listeners) l(changes);
  });
  es.onerror = () => {
    // EventSource reconnects by itself unless the server closed it for good.
    if (es.readyState === EventSource.CLOSED && conn.listeners.size) {
      // A refused stream may be a session that ended (a 401 the stream
      // cannot read): asking for the session tells the app if so.
      api.session().catch(() => undefined);
      conn.retry = setTimeout(() => open(project, conn), 3000);
    }
  };
}

export function subscribe(project: string, l: Listener): () => void {
  let conn = conns.get(project);
  if (!conn) {
    conn = { es: null, listeners: new Set() };
    conns.set(project, conn);
    open(project, conn);
  }
  conn.listeners.add(l);
  return () => {
    const c = conns.get(project);
    if (!c) return;
    c.listeners.delete(l);
    if (c.listeners.size === 0) {
      // Keep the stream briefly: page switches resubscribe at once.
      setTimeout(() => {
        if (c.listeners.size === 0 && conns.get(project) === c) {
          c.es?.close();
          if (c.retry) clearTimeout(c.retry);
          conns.delete(project);
        }
      }, 2000);
    }
  };
}

/** Calls `fn` with each batch of changes for `project`; `fn` may change
 * between renders without resubscribing. */
export function useLive(project: string | undefined, fn: Listener) {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (!project) return;
    return subscribe(project, (c) => ref.current(c));
  }, [project]);
}
