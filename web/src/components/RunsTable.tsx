// The virtualized runs table: fixed row height, only the visible window is
// rendered, pages of 200 runs are fetched from /runs as the user scrolls and
// `total` sizes the scroller, so 10,000 runs scroll smoothly.
//
// Nested runs (a run with a `parent`) turn the table into a tree: children
// under their parent, each parent expandable. A tree needs every matching
// run at once (a child may sort far from its parent), so when the filter
// matches nested runs the table fetches them all in one request (up to the
// API's 10,000) and renders the same window over the flattened tree.
import { useCallback, useEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Run, RunsPage } from "../api";
import { andFilter, api, runsByIds } from "../api";
import type { Column } from "../columns";
import { parseSort } from "../columns";
import { plural } from "../format";
import type { Mark, Shape, Tree, TreeRow } from "../tree";
import { buildTree, descendants, flatten } from "../tree";
import { useLive } from "../live";
import { Empty, ErrorBox, isQueryError, useTicker } from "./common";

export const ROW_H = 36;
const PAGE = 200;
const OVERSCAN = 12;
/** The most runs a tree is built from (the API's largest page). */
const TREE_MAX = 10000;
/** The deepest level indented further (each level is a 16-px guide,
 * `.tree-guide` in styles.css). */
const MAX_INDENT_DEPTH = 8;

export type TableApi = { rowsBetween: (a: number, b: number) => Promise<string[]>; reload: () => void };

declare global {
  interface Window {
    __labbookTable?: { total: number | null; loadedPages: number[]; rendered: number; requests: number; tree: boolean };
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
  collapsed,
  onToggle,
  firstPage,
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
  /** A first page already fetched (newest first), for the query it answers. */
  firstPage?: { project: string; filter: string; version: number; page: RunsPage };
  /** The filter box shows the filter's error. */
  filterInvalid?: boolean;
  /** Parents whose children are folded away (`collapse` in the URL). */
  collapsed: Set<string>;
  onToggle: (id: string) => void;
}) {
  const [total, setTotal] = useState<number | null>(null);
  const [pages, setPages] = useState<Map<number, Run[]>>(new Map());
  const [error, setError] = useState<Error | null>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewH, setViewH] = useState(600);
  const [liveTick, setLiveTick] = useState(0);
  // Every matching run's id and parent, when some are nested; null shows
  // the flat table. The tree's rows on screen are fetched whole by id.
  const [treeRuns, setTreeRuns] = useState<Shape[] | null>(null);
  const [treeFull, setTreeFull] = useState<Map<string, Run>>(new Map());
  const fullAsked = useRef(new Set<string>());
  const [treeNote, setTreeNote] = useState<string | null>(null);
  const [treePending, setTreePending] = useState(false);
  const totalRef = useRef<number | null>(null);
  const scroller = useRef<HTMLDivElement>(null);
  const inflight = useRef(new Map<number, Promise<Run[]>>());
  const gen = useRef(0);
  const stale = useRef(false);
  const lastClicked = useRef<number | null>(null);
  const requests = useRef(0);
  const now = useTicker(15000);
  const queryKey = `${project}\u0000${filter}\u0000${sort}\u0000${version}`;
  // The page the runs page already holds stands in for the first request
  // of a new query it answers (same project and filter, default sort).
  const seed = useRef<RunsPage | null>(null);

  const loadPage = useCallback(
    (p: number): Promise<Run[]> => {
      const existing = inflight.current.get(p);
      if (existing) return existing;
      const g = gen.current;
      if (!(p === 0 && seed.current)) requests.current++;
      const seeded = p === 0 ? seed.current : null;
      seed.current = null;
      const pr = (seeded ? Promise.resolve(seeded) : api.runs(project, { filter: filter || undefined, sort: sort || undefined, limit: PAGE, offset: p * PAGE })).then(
        (res) => {
          if (g !== gen.current) return res.runs;
          totalRef.current = res.total;
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
  // Null at first: the first load is a new query (and may make a tree).
  const prevQuery = useRef<{ filter: string; sort: string; project: string } | null>(null);
  useEffect(() => {
    gen.current++;
    inflight.current = new Map();
    const prev = prevQuery.current;
    const same = prev !== null && prev.filter === filter && prev.sort === sort && prev.project === project;
    prevQuery.current = { filter, sort, project };
    if (!same) {
      stale.current = false;
      setPages(new Map());
      setTotal(null);
      setTreeRuns(null);
      setTreeFull(new Map());
      fullAsked.current = new Set();
      setTreeNote(null);
      setTreePending(false);
      if (scroller.current) scroller.current.scrollTop = 0;
      setScrollTop(0);
      if (firstPage && firstPage.project === project && firstPage.filter === filter && !sort && firstPage.version === version) seed.current = firstPage.page;
      loadPage(0).then(nest, () => undefined);
    } else {
      refreshVisible();
    }
  }, [queryKey]);

  /** Turns the table into a tree when the matching runs include nested
   * ones. The first page holds them all when it holds every match. Past
   * that, a nested run on the first page says the tree is needed at once
   * (its rows wait for it rather than show flat and then move); when the
   * first page has none, one request asks whether any match has a parent. */
  async function nest(first: Run[]) {
    const g = gen.current;
    const total = totalRef.current ?? 0;
    try {
      const nested = first.some((r) => r.parent);
      if (total <= first.length) {
        if (nested) {
          fullAsked.current = new Set(first.map((r) => r.id));
          setTreeFull(new Map(first.map((r) => [r.id, r])));
          setTreeRuns(first);
        }
        return;
      }
      if (!nested) {
        const probe = await api.runs(project, { filter: andFilter(filter, "parent is not null"), limit: 1 });
        if (g !== gen.current || probe.total === 0) return;
      }
      if (total > TREE_MAX) {
        setTreeNote(`Nested runs are shown flat: ${total.toLocaleString("en-US")} runs match, more than the ${TREE_MAX.toLocaleString("en-US")} a tree is built from. Filter to fewer to see them nested.`);
        return;
      }
      if (nested) setTreePending(true);
      const all = await api.runShapes(project, { filter: filter || undefined, sort: sort || undefined, limit: TREE_MAX });
      if (g === gen.current) {
        setTotal(all.total);
        // The first page's rows are already whole.
        fullAsked.current = new Set(first.map((r) => r.id));
        setTreeFull(new Map(first.map((r) => [r.id, r])));
        setTreeRuns(all.runs);
      }
    } catch {
      // The flat table stays; its own requests report errors.
    } finally {
      if (g === gen.current) setTreePending(false);
    }
  }

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
    if (treeRuns) {
      // The tree is refetched whole; it stays on screen until then. A
      // query that no longer nests anything turns the table flat.
      const g = gen.current;
      api
        .runShapes(project, { filter: filter || undefined, sort: sort || undefined, limit: TREE_MAX })
        .then((all) => {
          if (g !== gen.current) return;
          setTotal(all.total);
          totalRef.current = all.total;
          if (all.runs.some((r) => r.parent) && all.total <= TREE_MAX) {
            // Rows on screen are fetched afresh; the old ones show till then.
            fullAsked.current = new Set();
            setTreeRuns(all.runs);
          } else {
            setTreeRuns(null);
            setPages(new Map());
            loadPage(0).catch(() => undefined);
          }
        })
        .catch((e: unknown) => setError(e instanceof Error ? e : new Error(String(e))));
      return;
    }
    const a = Math.floor(Math.max(0, scrollTop / ROW_H - OVERSCAN) / PAGE);
    const b = Math.floor((scrollTop + viewH) / ROW_H / PAGE);
    for (let p = a; p <= b; p++) loadPage(p).catch(() => undefined);
  }

  const tree: Tree | null = useMemo(() => (treeRuns ? buildTree(treeRuns) : null), [treeRuns]);
  const treeRows: TreeRow[] | null = useMemo(() => (tree ? flatten(tree, collapsed, MAX_INDENT_DEPTH) : null), [tree, collapsed]);
  /** Rows in the scroller: every match, or the tree's unfolded rows. */
  const count = treeRows ? treeRows.length : total;

  const first = Math.max(0, Math.floor(scrollTop / ROW_H) - OVERSCAN);
  const last = count === null ? 0 : Math.min(count - 1, Math.ceil((scrollTop + viewH) / ROW_H) + OVERSCAN);

  // A tree's rows in the window, fetched whole by id where not yet.
  useEffect(() => {
    if (!treeRows) return;
    const missing: string[] = [];
    for (let i = first; i <= last; i++) {
      const id = treeRows[i]?.run.id;
      if (id !== undefined && !fullAsked.current.has(id)) missing.push(id);
    }
    if (!missing.length) return;
    for (const id of missing) fullAsked.current.add(id);
    const g = gen.current;
    requests.current++;
    runsByIds(project, missing)
      .then((fresh) => {
        if (g !== gen.current) return;
        setTreeFull((old) => {
          const next = new Map(old);
          for (const r of fresh) next.set(r.id, r);
          return next;
        });
      })
      .catch((e: unknown) => {
        for (const id of missing) fullAsked.current.delete(id);
        if (g === gen.current) setError(e instanceof Error ? e : new Error(String(e)));
      });
  }, [first, last, treeRows]);

  // Fetch the pages the window needs.
  useEffect(() => {
    if (total === null || treeRows) return;
    for (let p = Math.floor(first / PAGE); p <= Math.floor(last / PAGE); p++) {
      if (!pages.has(p)) loadPage(p).catch(() => undefined);
    }
  }, [first, last, total, pages, loadPage]);

  const rowAt = (i: number): Run | undefined => {
    if (treeRows) {
      const id = treeRows[i]?.run.id;
      return id === undefined ? undefined : treeFull.get(id);
    }
    return treePending ? undefined : pages.get(Math.floor(i / PAGE))?.[i % PAGE];
  };

  // Live: patch changed rows in place; notice new runs.
  const liveState = useRef({ timer: 0 as ReturnType<typeof setTimeout> | 0, ids: new Set<string>(), unknown: false });
  useLive(project, (changes) => {
    const loaded = new Set<string>();
    for (const rows of pages.values()) for (const r of rows) loaded.add(r.id);
    for (const r of treeRuns ?? []) loaded.add(r.id);
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
            setTreeFull((old) => {
              const next = new Map(old);
              for (const r of fresh) if (next.has(r.id)) next.set(r.id, r);
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
    if (treeRows) return treeRows.slice(lo, hi + 1).map((t) => t.run.id);
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

  // A tree's first column holds the indentation, the fold button and the
  // count of children beside the name.
  const cols = useMemo(() => (tree ? columns.map((c, j) => (j === 0 ? { ...c, width: c.width + 120 } : c)) : columns), [columns, tree !== null]);
  const template = useMemo(() => `36px ${cols.map((c) => `${c.width}px`).join(" ")}`, [cols]);
  // The selection box and the name stay at the left edge while the other
  // columns scroll under them: a row is always known by its name.
  const pinned = cols[0]?.id === "name" ? 1 : 0;
  const pinW = 36 + (pinned ? cols[0].width : 0);
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
  }, [sort, cols, total === null]);
  const width = useMemo(() => 36 + cols.reduce((a, c) => a + c.width, 0), [cols]);
  const s = parseSort(sort);

  // Expose table state for tests and debugging.
  const rendered = count === null ? 0 : Math.max(0, last - first + 1);
  window.__labbookTable = { total, loadedPages: [...pages.keys()], rendered, requests: requests.current, tree: treeRows !== null };

  const rows = [];
  if (count !== null) {
    for (let i = first; i <= last; i++) {
      const r = rowAt(i);
      const t = treeRows?.[i];
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
          class={`tr ${sel ? "selected" : ""} ${i % 2 ? "odd" : ""}${t && t.depth > 0 ? " child" : ""}`}
          style={{ transform: `translateY(${top}px)`, gridTemplateColumns: template, width: `${width}px` }}
          key={r.id}
          data-run={r.id}
          data-index={i}
          data-depth={t ? t.depth : undefined}
          data-kids={t ? t.kids : undefined}
          data-mark={t?.mark ?? undefined}
        >
          <div class={`td check${pinned ? " pin" : " pin pin-last"}`}>
            <input type="checkbox" checked={sel} aria-label={`Select ${r.name}`} onClick={(e) => onCheck(i, r.id, e as MouseEvent)} />
          </div>
          {cols.map((c, j) => (
            <div class={`td ${c.numeric ? "num" : ""}${pinCls(j)}${t && j === 0 ? " tree-td" : ""}`} key={c.id} data-col={c.id} style={pinStyle(j)}>
              {t && j === 0 && tree ? <TreeCell t={t} run={r} tree={tree} open={!collapsed.has(r.id)} onToggle={onToggle} cell={c.cell(r, now)} /> : c.cell(r, now)}
            </div>
          ))}
        </div>,
      );
    }
  }

  const allLoadedSelected = total !== null && total > 0 && selected.size >= total;
  const contentH = count === null ? (error ? 52 : maxHeight) : 34 + count * ROW_H + (count === 0 ? 190 : 0) + (width > (scroller.current?.clientWidth ?? Infinity) ? 14 : 2);
  return (
    <div class="table-wrap" style={{ height: `${Math.min(maxHeight, contentH) + (treeNote ? 34 : 0)}px` }}>
      {treeNote && (
        <div class="table-note" data-testid="tree-note">
          {treeNote}
        </div>
      )}
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
        data-rows={count ?? ""}
        data-tree={treeRows ? "1" : undefined}
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
                const ids = await rowsBetween(0, Math.min((count ?? 1) - 1, 999));
                onSelect(ids, true, { replace: true });
              }}
            />
          </div>
          {cols.map((c, j) => {
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
        <div class="tbody" style={{ height: `${(count ?? 0) * ROW_H}px`, width: `${width}px` }}>
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

const MARKS: Record<Mark, { label: string; title: (r: Run) => string }> = {
  orphan: {
    label: "parent not listed",
    title: (r) => `Its parent run ${r.parent ?? ""} is not in this list: filtered out, deleted, or never logged here`,
  },
  cycle: {
    label: "parent cycle",
    title: (r) => `Its parent ${r.parent ?? ""} descends from it: the parent tags form a cycle, cut here`,
  },
  self: { label: "own parent", title: () => "Its mlflow.parentRunId tag names the run itself" },
};

/** The first cell of a tree row: indentation, the fold button of a parent
 * and its count of children, and the mark of a top-level row that has a
 * parent all the same. */
function TreeCell({ t, run, tree, open, onToggle, cell }: { t: TreeRow; run: Run; tree: Tree; open: boolean; onToggle: (id: string) => void; cell: ReturnType<Column["cell"]> }) {
  const all = t.kids ? descendants(tree, t.run.id) : 0;
  const m = t.mark ? MARKS[t.mark] : null;
  return (
    <span class="tree-cell">
      {t.trail.length > 0 && (
        <span class="tree-guides" aria-hidden="true">
          {t.trail.map((more, i) => (
            <span key={i} class={`tree-guide ${i < t.trail.length - 1 ? (more ? "line" : "") : more ? "tee" : "end"}`} />
          ))}
        </span>
      )}
      {t.kids > 0 ? (
        <button
          class="tree-toggle"
          aria-expanded={open}
          aria-label={`${open ? "Collapse" : "Expand"} the children of ${run.name}`}
          title={open ? "Hide its children" : "Show its children"}
          onClick={() => onToggle(t.run.id)}
          data-testid="tree-toggle"
        >
          <span class={`caret ${open ? "open" : ""}`}>▸</span>
        </button>
      ) : (
        <span class="tree-spacer" />
      )}
      <span class="tree-name">{cell}</span>
      {t.kids > 0 && (
        <span class="kids-count" title={all > t.kids ? `${plural(all, "run")} nested under it in all` : undefined} data-testid="kids-count">
          {plural(t.kids, "child", "children")}
        </span>
      )}
      {m && (
        <span class={`badge ${t.mark === "orphan" ? "subtle" : "warn"} tree-mark`} title={m.title(run)}>
          {m.label}
        </span>
      )}
    </span>
  );
}
