// A layered, left-to-right layout for lineage graphs: what fed a node sits
// to its left, what it fed to its right (inputs → run → outputs). A graph
// library would outweigh the rest of the dashboard, and lineage graphs are
// bipartite and nearly acyclic, so the classic steps are enough: break any
// cycle, give each node a layer (columns), route links that skip layers
// through placeholder points so they never cross a node, order each column
// to cut crossings (barycenters), then place nodes near their neighbours'
// heights without overlapping (least squares under gap constraints).
// Everything is iterative (no recursion) and about O(n log n) per sweep, so
// the store's largest answer (2,000 nodes) lays out in milliseconds.

export const NODE_W = 196;
export const NODE_H = 52;
export const GAP_X = 64;
export const GAP_Y = 16;
export const PAD = 20;
/** The room a link passing through a column takes in it. */
const THROUGH_H = 10;
const ORDER_SWEEPS = 16;
const PLACE_SWEEPS = 12;

export type Point = { x: number; y: number };
export type PlacedNode = { id: string; layer: number; x: number; y: number };
export type RoutedEdge = {
  from: string;
  to: string;
  /** In drawing order: the source's side, the points where the link crosses
   * the columns between, the target's side. */
  points: Point[];
  /** The link runs right to left: it closed a cycle. */
  backwards: boolean;
};
export type Layout = { nodes: Map<string, PlacedNode>; edges: RoutedEdge[]; width: number; height: number; layers: number };

type Item = { key: number; real: boolean; layer: number; pos: number; y: number };

/** Lays out `ids` (in a stable order: the first is placed first where
 * there is a choice) joined by `edges` (`from` feeds `to`). Edges naming
 * unknown ids, repeats and self-links are dropped. */
export function layoutLineage(ids: string[], edges: { from: string; to: string }[]): Layout {
  const index = new Map<string, number>();
  for (const id of ids) if (!index.has(id)) index.set(id, index.size);
  const names = [...index.keys()];
  const n = names.length;

  const seen = new Set<string>();
  const links: [number, number][] = [];
  for (const e of edges) {
    const a = index.get(e.from);
    const b = index.get(e.to);
    if (a === undefined || b === undefined || a === b || seen.has(`${a}>${b}`)) continue;
    seen.add(`${a}>${b}`);
    links.push([a, b]);
  }

  // 1. Break cycles: a depth-first walk reverses the links back to a node
  // still on its path, so the rest is a DAG.
  const out: number[][] = Array.from({ length: n }, () => []);
  links.forEach(([a], i) => out[a].push(i));
  const reversed = new Array<boolean>(links.length).fill(false);
  const state = new Uint8Array(n); // 0 new, 1 on the path, 2 done
  for (let start = 0; start < n; start++) {
    if (state[start]) continue;
    const stack: [number, number][] = [[start, 0]];
    state[start] = 1;
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [v, next] = top;
      if (next < out[v].length) {
        top[1]++;
        const li = out[v][next];
        const w = links[li][1];
        if (state[w] === 1) reversed[li] = true;
        else if (state[w] === 0) {
          state[w] = 1;
          stack.push([w, 0]);
        }
      } else {
        state[v] = 2;
        stack.pop();
      }
    }
  }
  const dag: [number, number][] = links.map(([a, b], i) => (reversed[i] ? [b, a] : [a, b]));

  // 2. Layers: the longest path from a source, then every node moved as
  // far right as its successors allow (a dataset used by a late run sits
  // just before it, not in the first column).
  const succ: number[][] = Array.from({ length: n }, () => []);
  const pred: number[][] = Array.from({ length: n }, () => []);
  for (const [a, b] of dag) {
    succ[a].push(b);
    pred[b].push(a);
  }
  const indeg = pred.map((p) => p.length);
  const topo: number[] = [];
  for (let v = 0; v < n; v++) if (indeg[v] === 0) topo.push(v);
  for (let i = 0; i < topo.length; i++) {
    for (const w of succ[topo[i]]) if (--indeg[w] === 0) topo.push(w);
  }
  const layer = new Array<number>(n).fill(0);
  for (const v of topo) for (const w of succ[v]) layer[w] = Math.max(layer[w], layer[v] + 1);
  for (let i = topo.length - 1; i >= 0; i--) {
    const v = topo[i];
    if (succ[v].length) layer[v] = Math.min(...succ[v].map((w) => layer[w])) - 1;
  }
  const low = n ? Math.min(...layer) : 0;
  for (let v = 0; v < n; v++) layer[v] -= low;
  const layers = n ? Math.max(...layer) + 1 : 0;

  // 3. Links that skip columns pass through placeholder items, one per
  // column crossed.
  const items: Item[] = names.map((_, v) => ({ key: v, real: true, layer: layer[v], pos: 0, y: 0 }));
  const up: number[][] = Array.from({ length: n }, () => []);
  const down: number[][] = Array.from({ length: n }, () => []);
  const chains: number[][] = [];
  for (const [a, b] of dag) {
    const chain = [a];
    for (let l = layer[a] + 1; l < layer[b]; l++) {
      const k = items.length;
      items.push({ key: k, real: false, layer: l, pos: 0, y: 0 });
      up.push([]);
      down.push([]);
      chain.push(k);
    }
    chain.push(b);
    for (let i = 1; i < chain.length; i++) {
      down[chain[i - 1]].push(chain[i]);
      up[chain[i]].push(chain[i - 1]);
    }
    chains.push(chain);
  }

  // 4. Order each column: first as a walk from the first node meets them
  // (neighbours in the order of `ids`, which for the server's graphs is
  // the order runs used and logged versions, so a sweep reads in order),
  // then barycenter sweeps, keeping the order with the fewest crossings.
  const rank = items.map((it) => it.key);
  chains.forEach((chain) => chain.slice(1, -1).forEach((k) => (rank[k] = chain[chain.length - 1])));
  const byRank = (a: number, b: number) => rank[a] - rank[b];
  const columns: number[][] = Array.from({ length: layers }, () => []);
  const visited = new Uint8Array(items.length);
  const visit = (from: number) => {
    const queue = [from];
    visited[from] = 1;
    for (let i = 0; i < queue.length; i++) {
      const v = queue[i];
      columns[items[v].layer].push(v);
      for (const w of [...up[v], ...down[v]].sort(byRank)) {
        if (!visited[w]) {
          visited[w] = 1;
          queue.push(w);
        }
      }
    }
  };
  for (let v = 0; v < items.length; v++) if (!visited[v]) visit(v);
  const renumber = () => columns.forEach((c) => c.forEach((v, i) => (items[v].pos = i)));
  renumber();
  let best = columns.map((c) => [...c]);
  let fewest = crossings(columns, down, items);
  for (let sweep = 0; sweep < ORDER_SWEEPS && fewest > 0; sweep++) {
    const forward = sweep % 2 === 0;
    for (let k = 1; k < layers; k++) {
      const l = forward ? k : layers - 1 - k;
      const near = forward ? up : down;
      const keyed = columns[l].map((v) => {
        const ns = near[v];
        const bary = ns.length ? ns.reduce((s, w) => s + items[w].pos, 0) / ns.length : items[v].pos;
        return { v, bary, pos: items[v].pos };
      });
      keyed.sort((a, b) => a.bary - b.bary || a.pos - b.pos);
      columns[l] = keyed.map((k2) => k2.v);
      columns[l].forEach((v, i) => (items[v].pos = i));
    }
    const c = crossings(columns, down, items);
    if (c < fewest) {
      fewest = c;
      best = columns.map((col) => [...col]);
    }
  }
  best.forEach((c, l) => (columns[l] = c));
  renumber();

  // 5. Heights: each item as near its neighbours' mean as the column's
  // order and gaps allow, column by column, down the links and back.
  const height = (v: number) => (items[v].real ? NODE_H : THROUGH_H);
  for (const c of columns) {
    let y = 0;
    for (const v of c) {
      items[v].y = y + height(v) / 2;
      y += height(v) + GAP_Y;
    }
  }
  // Centre the columns on the tallest before pulling them together.
  const extent = (c: number[]) => (c.length ? items[c[c.length - 1]].y + height(c[c.length - 1]) / 2 : 0);
  const tallest = Math.max(0, ...columns.map(extent));
  for (const c of columns) {
    const shift = (tallest - extent(c)) / 2;
    for (const v of c) items[v].y += shift;
  }
  for (let sweep = 0; sweep < PLACE_SWEEPS; sweep++) {
    const forward = sweep % 2 === 0;
    for (let k = 0; k < layers; k++) {
      const l = forward ? k : layers - 1 - k;
      const near = forward ? up : down;
      const c = columns[l];
      const wanted = c.map((v) => {
        const ns = near[v].length ? near[v] : [...up[v], ...down[v]];
        return ns.length ? ns.reduce((s, w) => s + items[w].y, 0) / ns.length : items[v].y;
      });
      place(c, wanted, height).forEach((y, i) => (items[c[i]].y = y));
    }
  }

  // 6. Coordinates: columns left to right, the whole moved to the margin.
  let top = Infinity;
  let bottom = -Infinity;
  for (const it of items) {
    top = Math.min(top, it.y - height(it.key) / 2);
    bottom = Math.max(bottom, it.y + height(it.key) / 2);
  }
  if (!items.length) top = bottom = 0;
  const xOf = (l: number) => PAD + l * (NODE_W + GAP_X);
  const yOf = (v: number) => items[v].y - top + PAD;
  const nodes = new Map<string, PlacedNode>();
  names.forEach((id, v) => nodes.set(id, { id, layer: layer[v], x: xOf(layer[v]), y: yOf(v) - NODE_H / 2 }));
  const routed: RoutedEdge[] = chains.map((chain, i) => {
    const [a, b] = links[i];
    const points: Point[] = [];
    chain.forEach((v, j) => {
      const x = xOf(items[v].layer);
      const y = yOf(v);
      if (j === 0) points.push({ x: x + NODE_W, y });
      else if (j === chain.length - 1) points.push({ x, y });
      else points.push({ x, y }, { x: x + NODE_W, y });
    });
    if (reversed[i]) points.reverse();
    return { from: names[a], to: names[b], points, backwards: reversed[i] };
  });
  return {
    nodes,
    edges: routed,
    width: layers ? xOf(layers - 1) + NODE_W + PAD : 2 * PAD,
    height: bottom - top + 2 * PAD,
    layers,
  };
}

/** Crossings between adjacent columns, counted as inversions (a Fenwick
 * tree per column pair): O(links · log n), not links². */
export function crossings(columns: number[][], down: number[][], items: { pos: number }[]): number {
  let total = 0;
  for (let l = 0; l + 1 < columns.length; l++) {
    const pairs: [number, number][] = [];
    for (const v of columns[l]) for (const w of down[v]) pairs.push([items[v].pos, items[w].pos]);
    pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const size = columns[l + 1].length + 1;
    const tree = new Array<number>(size + 1).fill(0);
    let seenCount = 0;
    for (const [, p] of pairs) {
      // Links seen so far that end below this one's end cross it.
      let atOrBelow = 0;
      for (let i = p + 1; i > 0; i -= i & -i) atOrBelow += tree[i];
      total += seenCount - atOrBelow;
      for (let i = p + 1; i <= size; i += i & -i) tree[i]++;
      seenCount++;
    }
  }
  return total;
}

/** The heights closest (least squares) to `wanted` that keep the column's
 * order and its items `GAP_Y` apart: with each item's offset from the
 * first subtracted, the constraint is "non-decreasing", which pool-adjacent-
 * violators solves exactly in one pass. */
export function place(column: number[], wanted: number[], height: (v: number) => number): number[] {
  const offset: number[] = [];
  let acc = 0;
  column.forEach((v, i) => {
    if (i > 0) acc += (height(column[i - 1]) + height(v)) / 2 + GAP_Y;
    offset.push(acc);
  });
  const blocks: { sum: number; count: number }[] = [];
  wanted.forEach((w, i) => {
    blocks.push({ sum: w - offset[i], count: 1 });
    while (blocks.length > 1) {
      const b = blocks[blocks.length - 1];
      const a = blocks[blocks.length - 2];
      if (a.sum / a.count <= b.sum / b.count) break;
      blocks.splice(blocks.length - 2, 2, { sum: a.sum + b.sum, count: a.count + b.count });
    }
  });
  const out: number[] = [];
  for (const b of blocks) for (let k = 0; k < b.count; k++) out.push(b.sum / b.count + offset[out.length]);
  return out;
}

/** An SVG path through `points`: straight across a column, a horizontal
 * S-curve between columns. */
export function edgePath(points: Point[]): string {
  if (!points.length) return "";
  let d = `M${points[0].x},${points[0].y}`;
  for (let i = 1; i < points.length; i++) {
    const p = points[i - 1];
    const q = points[i];
    if (p.y === q.y) d += `L${q.x},${q.y}`;
    else {
      const mid = (p.x + q.x) / 2;
      d += `C${mid},${p.y} ${mid},${q.y} ${q.x},${q.y}`;
    }
  }
  return d;
}
