// Nested runs as a tree for the runs table: children under their parent,
// in the order the runs came (the table's sort), so sorting orders parents
// and, within each parent, its children.
//
// Parents come from tags anyone can write (MLflow's mlflow.parentRunId), so
// the relation may be anything: a parent that is not in the list (filtered
// out, deleted, never logged), a run that is its own parent, runs that are
// each other's. Every run still appears exactly once: one whose parent is
// not listed is a top-level row with a mark, and a cycle is cut at the
// member that comes first, which becomes a top-level row marked as such.
// Nothing here recurses, so no shape of parents can overflow the stack.
import type { Run } from "./api";

/** What a tree is built from: a run's id and parent (a full Run will do). */
export type Shape = Pick<Run, "id" | "parent">;

/** Why a top-level row has a parent all the same. */
export type Mark = "orphan" | "cycle" | "self";

export type Tree = {
  roots: string[];
  kids: Map<string, string[]>;
  marks: Map<string, Mark>;
  byId: Map<string, Shape>;
};

/** A row of the flattened tree. `trail` draws its guide lines: one entry
 * per level above it (the last `maxTrail` levels at most), true where the
 * run at that level has a later sibling, so its line runs on below this
 * row; the last entry is the row's own (├ when true, └ when false). */
export type TreeRow = { run: Shape; depth: number; kids: number; mark: Mark | null; trail: boolean[] };

export function buildTree(runs: Shape[]): Tree {
  const byId = new Map<string, Shape>();
  for (const r of runs) if (!byId.has(r.id)) byId.set(r.id, r);
  const order = new Map([...byId.keys()].map((id, i) => [id, i]));
  const kids = new Map<string, string[]>();
  const marks = new Map<string, Mark>();
  const rootSet = new Set<string>();
  /** The parent edge each run hangs by (none for a root). */
  const up = new Map<string, string>();
  for (const r of byId.values()) {
    const p = r.parent;
    if (!p) rootSet.add(r.id);
    else if (p === r.id) {
      rootSet.add(r.id);
      marks.set(r.id, "self");
    } else if (!byId.has(p)) {
      rootSet.add(r.id);
      marks.set(r.id, "orphan");
    } else {
      up.set(r.id, p);
      const list = kids.get(p);
      if (list) list.push(r.id);
      else kids.set(p, [r.id]);
    }
  }

  // Runs reachable from a root; the rest hang on, or under, a cycle.
  const reached = new Set<string>();
  const reach = (from: string) => {
    const stack = [from];
    while (stack.length) {
      const id = stack.pop() as string;
      if (reached.has(id)) continue;
      reached.add(id);
      for (const k of kids.get(id) ?? []) stack.push(k);
    }
  };
  for (const id of rootSet) reach(id);
  for (const id of byId.keys()) {
    if (reached.has(id)) continue;
    // Walk up to the first run seen twice: it is on the cycle; the cycle's
    // member that comes first becomes a root.
    const seen = new Set<string>();
    let cur = id;
    while (!seen.has(cur)) {
      seen.add(cur);
      cur = up.get(cur) as string;
    }
    const cycle = [cur];
    for (let x = up.get(cur) as string; x !== cur; x = up.get(x) as string) cycle.push(x);
    const cut = cycle.reduce((a, b) => ((order.get(a) ?? 0) <= (order.get(b) ?? 0) ? a : b));
    const p = up.get(cut) as string;
    kids.set(
      p,
      (kids.get(p) ?? []).filter((k) => k !== cut),
    );
    up.delete(cut);
    rootSet.add(cut);
    marks.set(cut, "cycle");
    reach(cut);
  }
  const roots = [...byId.keys()].filter((id) => rootSet.has(id));
  return { roots, kids, marks, byId };
}

/** The rows shown: every root, and under each parent not in `collapsed`
 * its children, depth first. A row's `trail` keeps its last `maxTrail`
 * levels (however deep the nesting, each row holds a bounded list). */
export function flatten(tree: Tree, collapsed: Set<string>, maxTrail = 8): TreeRow[] {
  const rows: TreeRow[] = [];
  type Item = { id: string; depth: number; trail: boolean[] };
  const stack: Item[] = [];
  for (let i = tree.roots.length - 1; i >= 0; i--) stack.push({ id: tree.roots[i], depth: 0, trail: [] });
  while (stack.length) {
    const { id, depth, trail } = stack.pop() as Item;
    const run = tree.byId.get(id);
    if (!run) continue;
    const k = tree.kids.get(id) ?? [];
    rows.push({ run, depth, kids: k.length, mark: tree.marks.get(id) ?? null, trail });
    if (k.length && !collapsed.has(id))
      for (let i = k.length - 1; i >= 0; i--) {
        const t = [...trail, i < k.length - 1];
        stack.push({ id: k[i], depth: depth + 1, trail: t.length > maxTrail ? t.slice(t.length - maxTrail) : t });
      }
  }
  return rows;
}

/** How many runs nest under `id`, at any depth. */
export function descendants(tree: Tree, id: string): number {
  let n = 0;
  const stack = [...(tree.kids.get(id) ?? [])];
  while (stack.length) {
    const k = stack.pop() as string;
    n++;
    stack.push(...(tree.kids.get(k) ?? []));
  }
  return n;
}
