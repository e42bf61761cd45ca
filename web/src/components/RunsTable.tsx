// The virtualized runs table: fixed row height, only the visible window is
// rendered, pages of 200 runs are fetched from /runs as the user scrolls and
// `total` sizes the scroller, so 10,000 runs scroll smoothly.
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Run } from "../api";
import { api, runsByIds } from "../api";
import type { Column } from "../columns";
import { parseSort } from "../columns";
import { useLive } from "../live";
import { Empty, ErrorBox, isQueryError, useTicker } from "./common";

export const ROW_H = 36;
const PAGE = 200;
const OVERSCAN = 12;

export type TableApi = { rowsBetween: (a: number, b: number) => Promise<string[]>; reload: () => void };

declare global {
  interface Window {
    __labbookTable?: { total: number | null; loadedPages: number[]; rendered: number; requests: number };
  }
}

export function RunsTable({
  project,
  filter,
  sort,
  columns,
  selected,
  onSelect,
  onSort,
  version,
  tableRef,
  maxHeight,
  onFirstPage,
  filterInvalid,
}: {
  project: string;
  filter: string;
  sort: string;
  columns: Column[];
  selected: Set<string>;
  onSelect: (ids: string[], on: boolean, opts?: { replace?: boolean }) => void;
  onSort: (col: Column) => void;
  version: number;
  tableRef?: (api: TableApi) => void;
  maxHeight: number;
  onFirstPage?: (runs: Run[]) => void;
  /** The filter box shows the filter's error. */
  filterInvalid?: boolean;
}) {
  const [total, setTotal] = useState<number | null>(null);
  const [pages, setPages] = useState<Map<number, Run[]>>(new Map());
  const [error, setError] = useState<Error | null>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewH, setViewH] = useState(600);
  const [liveTick, setLiveTick] = useState(0);
  const scroller = useRef<HTMLDivElement>(null);
  const inflight = useRef(new Map<number, Promise<Run[]>>());
  const gen = useRef(0);
  const stale = useRef(false);
  const lastClicked = useRef<number | null>(null);
  const requests = useRef(0);
  const now = useTicker(15000);
  const queryKey = `${project}\u0000${filter}\u0000${sort}\u0000${version}`;

  const loadPage = useCallback(
    (p: number): Promise<Run[]> => {
      const existing = inflight.current.get(p);
      if (existing) return existing;
      const g = gen.current;
      requests.current++;
      const pr = api.runs(project, { filter: filter || undefined, sort: sort || undefined, limit: PAGE, offset: p * PAGE }).then(
        (res) => {
          if (g !== gen.current) return res.runs;
          setTotal(res.total);
          setPages((old) => {
            // After a refresh the old pages stay on screen until fresh rows arrive.
            const next = stale.current ? new Map<number, Run[]>() : new Map(old);
            stale.current = false;
            return next.set(p, res.runs);
          });
          if (p === 0) onFirstPage?.(res.runs);
          setError(null);
          return res.runs;
        },
        (e: unknown) => {
          inflight.current.delete(p);
          if (g === gen.current) setError(e instanceof Error ? e : new Error(String(e)));
          throw e;
        },
      );
      inflight.current.set(p, pr);
      return pr;
    },
    [queryKey],
  );

  // A new query starts from scratch (but keeps the scroll position when only
  // the version changed, e.g. after tagging).
  const prevQuery = useRef({ filter, sort, project });
  useEffect(() => {
    gen.current++;
    inflight.current = new Map();
    const same = prevQuery.current.filter === filter && prevQuery.current.sort === sort && prevQuery.current.project === project;
    prevQuery.current = { filter, sort, project };
    if (!same) {
      stale.current = false;
      setPages(new Map());
      setTotal(null);
      if (scroller.current) scroller.current.scrollTop = 0;
      setScrollTop(0);
      loadPage(0).catch(() => undefined);
    } else {
      refreshVisible();
    }
  }, [queryKey]);

  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setViewH(el.clientHeight));
    ro.observe(el);
    setViewH(el.clientHeight);
    return () => ro.disconnect();
  }, []);

  /** Refetches the pages on screen (same query, changed data), keeping the
   * current rows visible until the fresh ones arrive. */
  function refreshVisible() {
    gen.current++;
    inflight.current = new Map();
    stale.current = true;
    const a = Math.floor(Math.max(0, scrollTop / ROW_H - OVERSCAN) / PAGE);
    const b = Math.floor((scrollTop + viewH) / ROW_H / PAGE);
    for (let p = a; p <= b; p++) loadPage(p).catch(() => undefined);
  }

  const first = Math.max(0, Math.floor(scrollTop / ROW_H) - OVERSCAN);
  const last = total === null ? 0 : Math.min(total - 1, Math.ceil((scrollTop + viewH) / ROW_H) + OVERSCAN);

  // Fetch the pages the window needs.
  useEffect(() => {
    if (total === null) return;
    for (let p = Math.floor(first / PAGE); p <= Math.floor(last / PAGE); p++) {
      if (!pages.has(p)) loadPage(p).catch(() => undefined);
    }
  }, [first, last, total, pages, loadPage]);

  const rowAt = (i: number): Run | undefined => pages.get(Math.floor(i / PAGE))?.[i % PAGE];

  // Live: patch changed rows in place; notice new runs.
  const liveState = useRef({ timer: 0 as ReturnType<typeof setTimeout> | 0, ids: new Set<string>(), unknown: false });
  useLive(project, (changes) => {
    const loaded = new Set<string>();
    for (const rows of pages.values()) for (const r of rows) loaded.add(r.id);
    const st = liveState.current;
    for (const c of changes) {
      if (loaded.has(c.id)) st.ids.add(c.id);
      else st.unknown = true;
    }
    if (st.timer) return;
    st.timer = setTimeout(() => {
      const ids = [...st.ids];
      const unknown = st.unknown;
      st.ids.clear();
      st.unknown = false;
      st.timer = 0;
      if (unknown) {
        // A new run (or one that now matches): recount and refresh the window.
        api
          .runs(project, { filter: filter || undefined, sort: sort || undefined, limit: 1 })
          .then((res) => {
            if (res.total !== total) refreshVisible();
          })
          .catch(() => undefined);
      }
      if (ids.length) {
        runsByIds(project, ids)
          .then((fresh) => {
            const byId = new Map(fresh.map((r) => [r.id, r]));
            setPages((old) => {
              const next = new Map<number, Run[]>();
              for (const [p, rows] of old) next.set(p, rows.map((r) => byId.get(r.id) ?? r));
              return next;
            });
            setLiveTick((t) => t + 1);
          })
          .catch(() => undefined);
      }
    }, 1000);
  });

  const rowsBetween = async (a: number, b: number): Promise<string[]> => {
    const lo = Math.min(a, b);
    const hi = Math.max(a, b);
    const ids: string[] = [];
    for (let p = Math.floor(lo / PAGE); p <= Math.floor(hi / PAGE); p++) {
      const rows = pages.get(p) ?? (await loadPage(p));
      rows.forEach((r, j) => {
        const i = p * PAGE + j;
        if (i >= lo && i <= hi) ids.push(r.id);
      });
    }
    return ids;
  };
  useEffect(() => {
    tableRef?.({
      rowsBetween,
      reload: refreshVisible,
    });
  });

  const onCheck = async (i: number, id: string, e: MouseEvent) => {
    const on = !selected.has(id);
    if (e.shiftKey && lastClicked.current !== null) {
      const ids = await rowsBetween(lastClicked.current, i);
      onSelect(ids, on);
    } else {
      onSelect([id], on);
    }
    lastClicked.current = i;
  };

  const template = useMemo(() => `36px ${columns.map((c) => `${c.width}px`).join(" ")}`, [columns]);
  // The selection box and the name stay at the left edge while the other
  // columns scroll under them: a row is always known by its name.
  const pinned = columns[0]?.id === "name" ? 1 : 0;
  const pinW = 36 + (pinned ? columns[0].width : 0);
  const pinCls = (i: number) => (i < pinned ? ` pin${i === pinned - 1 ? " pin-last" : ""}` : "");
  const pinStyle = (i: number) => (i < pinned ? { left: "36px" } : undefined);

  // A sort chosen elsewhere (a link, the URL) brings its column into view.
  useEffect(() => {
    const el = scroller.current;
    const th = el?.querySelector<HTMLElement>(".th.sorted");
    if (!el || !th) return;
    const left = th.offsetLeft;
    const right = left + th.offsetWidth;
    if (left < el.scrollLeft + pinW || right > el.scrollLeft + el.clientWidth) el.scrollLeft = Math.max(0, left - pinW - 24);
  }, [sort, columns, total === null]);
  const width = useMemo(() => 36 + columns.reduce((a, c) => a + c.width, 0), [columns]);
  const s = parseSort(sort);

  // Expose table state for tests and debugging.
  const rendered = total === null ? 0 : Math.max(0, last - first + 1);
  window.__labbookTable = { total, loadedPages: [...pages.keys()], rendered, requests: requests.current };

  const rows = [];
  if (total !== null) {
    for (let i = first; i <= last; i++) {
      const r = rowAt(i);
      const top = i * ROW_H;
      if (!r) {
        rows.push(
          <div class="tr placeholder" style={{ transform: `translateY(${top}px)`, gridTemplateColumns: template, width: `${width}px` }} key={`p${i}`}>
            <div class="td pin" />
            <div class={`td${pinCls(0)}`} style={pinStyle(0)}>
              <span class="skeleton" />
            </div>
          </div>,
        );
        continue;
      }
      const sel = selected.has(r.id);
      rows.push(
        <div
          class={`tr ${sel ? "selected" : ""} ${i % 2 ? "odd" : ""}`}
          style={{ transform: `translateY(${top}px)`, gridTemplateColumns: template, width: `${width}px` }}
          key={r.id}
          data-run={r.id}
          data-index={i}
        >
          <div class={`td check${pinned ? " pin" : " pin pin-last"}`}>
            <input type="checkbox" checked={sel} aria-label={`Select ${r.name}`} onClick={(e) => onCheck(i, r.id, e as MouseEvent)} />
          </div>
          {columns.map((c, j) => (
            <div class={`td ${c.numeric ? "num" : ""}${pinCls(j)}`} key={c.id} data-col={c.id} style={pinStyle(j)}>
              {c.cell(r, now)}
            </div>
          ))}
        </div>,
      );
    }
  }

  const allLoadedSelected = total !== null && total > 0 && selected.size >= total;
  const contentH = total === null ? (error ? 52 : maxHeight) : 34 + total * ROW_H + (total === 0 ? 190 : 0) + (width > (scroller.current?.clientWidth ?? Infinity) ? 14 : 2);
  return (
    <div class="table-wrap" style={{ height: `${Math.min(maxHeight, contentH)}px` }}>
      {error &&
        (isQueryError(error) && filter ? (
          <div class="table-note" data-testid="table-note">
            No runs shown: {filterInvalid ? "the filter has an error (see under the filter box)." : error.message}
          </div>
        ) : (
          <ErrorBox error={error} retry={() => loadPage(0).catch(() => undefined)} />
        ))}
      <div
        class="scroller"
        ref={scroller}
        data-testid="runs-scroller"
        data-total={total ?? ""}
        data-live={liveTick}
        onScroll={(e) => {
          const t = (e.target as HTMLDivElement).scrollTop;
          requestAnimationFrame(() => setScrollTop(t));
        }}
      >
        <div class="thead" style={{ gridTemplateColumns: template, width: `${width}px` }} role="row">
          <div class={`th check${pinned ? " pin" : " pin pin-last"}`}>
            <input
              type="checkbox"
              title={total !== null && total > 1000 ? "Select the first 1,000 matching runs" : "Select every matching run"}
              checked={allLoadedSelected}
              onClick={async () => {
                if (allLoadedSelected || (selected.size > 0 && total !== null)) {
                  onSelect([], false, { replace: true });
                  return;
                }
                const ids = await rowsBetween(0, Math.min((total ?? 1) - 1, 999));
                onSelect(ids, true, { replace: true });
              }}
            />
          </div>
          {columns.map((c, j) => {
            const active = s && c.sort && s.field === c.sort;
            return (
              <button
                class={`th ${c.numeric ? "num" : ""} ${active ? "sorted" : ""}${pinCls(j)}`}
                style={pinStyle(j)}
                key={c.id}
                title={c.sort ? `${c.title} — click to sort` : c.title}
                onClick={() => c.sort && onSort(c)}
                data-col={c.id}
              >
                <span class="th-label">{c.label}</span>
                {active && <span class="sort-ind">{s?.desc ? "↓" : "↑"}</span>}
              </button>
            );
          })}
        </div>
        <div class="tbody" style={{ height: `${(total ?? 0) * ROW_H}px`, width: `${width}px` }}>
          {rows}
        </div>
        {total === 0 &&
          (filter ? (
            <Empty title="No runs match this filter">Loosen the filter, or clear it to see every run.</Empty>
          ) : (
            <Empty title="No runs yet">
              Log one with <code>labbook.init(project="{project}")</code> or <code>labbook run --project {project} -- python train.py</code>.
            </Empty>
          ))}
      </div>
    </div>
  );
}
