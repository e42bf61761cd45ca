// The lineage graph of a version or a run, drawn as SVG: what fed a node to
// its left, what it fed to its right. Loaded on first use (its own chunk).
import { useMemo, useState } from "preact/hooks";
import type { LineageGraph, LineageNode } from "../api";
import { api } from "../api";
import { plural } from "../format";
import type { PlacedNode } from "../lineage";
import { NODE_H, NODE_W, edgePath, layoutLineage } from "../lineage";
import { artifactPath, navigate, runPath } from "../router";
import { Empty, ErrorBox, Loading, useAsync, useElementWidth } from "./common";
import "./lineage.css";

export type LineageSource = { kind: "version"; project: string; name: string; version: string } | { kind: "run"; id: string };

/** The graph around a version or a run, fetched and drawn. */
export function LineageTab({ source }: { source: LineageSource }) {
  const key = source.kind === "run" ? `run/${source.id}` : `${source.project}/${source.name}:${source.version}`;
  const graph = useAsync(
    (signal) => (source.kind === "run" ? api.runLineage(source.id, signal) : api.versionLineage(source.project, source.name, source.version, signal)),
    [key],
  );
  if (graph.error) return <ErrorBox error={graph.error} retry={graph.reload} />;
  if (!graph.data) return <Loading label="Loading the lineage…" />;
  const g = graph.data;
  if (g.nodes.length <= 1)
    return (
      <Empty title="No lineage yet">
        {source.kind === "run" ? (
          <>
            This run used and logged no artifact versions. Link them with <code>run.use_artifact("name:latest")</code> and <code>run.log_artifact(…)</code>.
          </>
        ) : (
          <>No run logged or used this version.</>
        )}
      </Empty>
    );
  return <LineageView graph={g} />;
}

/** Where a node's page is: its own lineage view, so a click walks the graph. */
function hrefOf(node: LineageNode): string | null {
  if (node.kind === "artifact") return `${artifactPath(node.project, node.name, node.version)}?tab=lineage`;
  return node.project ? `${runPath(node.project, node.id)}?tab=lineage` : null;
}

type Zoom = number | "fit";
// Below this a label is too small to read: the graph scrolls instead.
const MIN_FIT = 0.8;

export function LineageView({ graph }: { graph: LineageGraph }) {
  const layout = useMemo(
    () =>
      layoutLineage(
        graph.nodes.map((n) => n.id),
        graph.edges,
      ),
    [graph],
  );
  const [hover, setHover] = useState<string | null>(null);
  const [zoom, setZoom] = useState<Zoom>("fit");
  const [box, width] = useElementWidth<HTMLDivElement>();
  const fit = width > 0 ? Math.max(MIN_FIT, Math.min(1, (width - 2) / layout.width)) : 1;
  const scale = zoom === "fit" ? fit : zoom;
  const near = useMemo(() => {
    const out = new Set<string>();
    if (!hover) return out;
    for (const e of graph.edges) {
      if (e.from === hover) out.add(e.to);
      if (e.to === hover) out.add(e.from);
    }
    return out;
  }, [hover, graph]);
  const artifacts = graph.nodes.filter((n) => n.kind === "artifact").length;
  const runs = graph.nodes.length - artifacts;
  const step = (by: number) => setZoom(Math.min(2, Math.max(0.25, Math.round((scale + by) * 100) / 100)));
  return (
    <div class="lineage card" data-testid="lineage">
      <div class="lineage-bar">
        <span class="muted num" data-testid="lineage-counts">
          {plural(artifacts, "artifact version")} · {plural(runs, "run")} · {plural(graph.edges.length, "link")}
        </span>
        <span class="lineage-legend" aria-hidden="true">
          <span class="lg-key lg-key-dataset">dataset</span>
          <span class="lg-key lg-key-model">model</span>
          <span class="lg-key lg-key-other">other artifact</span>
          <span class="lg-key lg-key-run">run</span>
        </span>
        <span class="grow" />
        <div class="seg" role="group" aria-label="Zoom">
          <button class="seg-btn" onClick={() => step(-0.15)} title="Zoom out" aria-label="Zoom out">
            −
          </button>
          <button class={`seg-btn ${zoom === "fit" ? "active" : ""}`} onClick={() => setZoom("fit")} title="Fit the width">
            Fit
          </button>
          <button class={`seg-btn ${zoom === 1 ? "active" : ""}`} onClick={() => setZoom(1)} title="Actual size">
            100%
          </button>
          <button class="seg-btn" onClick={() => step(0.15)} title="Zoom in" aria-label="Zoom in">
            +
          </button>
        </div>
      </div>
      {graph.truncated && (
        <div class="lineage-note" data-testid="lineage-truncated">
          The graph stops 16 links from here, or at 2,000 nodes. Open a node at its edge to walk on from there.
        </div>
      )}
      <div class="lineage-canvas" ref={box}>
        <svg
          class="lineage-svg"
          width={Math.ceil(layout.width * scale)}
          height={Math.ceil(layout.height * scale)}
          viewBox={`0 0 ${layout.width} ${layout.height}`}
          role="img"
          aria-label={`Lineage graph: ${plural(artifacts, "artifact version")} and ${plural(runs, "run")}`}
          data-testid="lineage-graph"
          data-scale={scale.toFixed(3)}
        >
          <g class="lg-edges">
            {layout.edges.map((e) => {
              const hot = hover !== null && (e.from === hover || e.to === hover);
              const end = e.points[e.points.length - 1];
              const before = e.points[e.points.length - 2] ?? end;
              return (
                <g key={`${e.from}>${e.to}`} class={`lg-edge ${hot ? "hot" : ""} ${e.backwards ? "back" : ""}`} data-from={e.from} data-to={e.to}>
                  <path class="lg-line" d={edgePath(e.points)} />
                  <path class="lg-arrow" d={arrow(end.x, end.y, end.x >= before.x ? 1 : -1)} />
                </g>
              );
            })}
          </g>
          <g class="lg-nodes">
            {graph.nodes.map((n) => {
              const at = layout.nodes.get(n.id);
              if (!at) return null;
              const state = n.id === graph.root ? "current" : hover === n.id ? "hot" : near.has(n.id) ? "near" : hover ? "dim" : "";
              return <Node key={n.id} node={n} at={at} state={state} onHover={setHover} />;
            })}
          </g>
        </svg>
      </div>
    </div>
  );
}

/** An arrowhead ending at (x, y), pointing right (dir 1) or left (-1). */
function arrow(x: number, y: number, dir: number): string {
  const back = x - 7 * dir;
  return `M${x},${y}L${back},${y - 4}L${back},${y + 4}Z`;
}

/** `text` cut to `max` characters with an ellipsis. */
function cut(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

function typeClass(type: string): string {
  return type === "dataset" || type === "model" ? type : "other";
}

function Node({ node, at, state, onHover }: { node: LineageNode; at: PlacedNode; state: string; onHover: (id: string | null) => void }) {
  const href = hrefOf(node);
  const isRun = node.kind === "run";
  const title = isRun ? `run ${node.name} (${node.id}) · ${node.status}${node.project ? ` · ${node.project}` : ""}` : `${node.name}:v${node.version} · ${node.type} · ${node.project}${node.deleted ? " · deleted" : ""}`;
  const label = isRun ? node.name : `${node.name}:v${node.version}`;
  const sub = isRun ? `${node.id} · ${node.status}` : `${node.type}${node.deleted ? " · deleted" : ""}`;
  const kindClass = isRun ? "lg-run" : `lg-artifact lg-${typeClass(node.type)}`;
  const body = (
    <>
      <title>{title}</title>
      <rect class="lg-box" width={NODE_W} height={NODE_H} rx={isRun ? NODE_H / 2 : 8} />
      {!isRun && <rect class="lg-strip" x={0.75} y={0.75} width={5} height={NODE_H - 1.5} rx={3} />}
      <g transform={`translate(16, ${NODE_H / 2 - 8})`}>{isRun ? <RunGlyph status={node.status} /> : <ArtifactGlyph type={node.type} />}</g>
      <text class="lg-label" x={40} y={22}>
        {cut(label, 21)}
      </text>
      <text class="lg-sub" x={40} y={38}>
        {cut(sub, 22)}
      </text>
    </>
  );
  const common = {
    class: `lg-node ${kindClass} ${state} ${!isRun && node.deleted ? "deleted" : ""}`,
    "data-node-id": node.id,
    "data-kind": node.kind,
    "data-current": state === "current" ? "true" : undefined,
    onMouseEnter: () => onHover(node.id),
    onMouseLeave: () => onHover(null),
  };
  const placed = <g transform={`translate(${at.x}, ${at.y})`}>{body}</g>;
  if (!href) return <g {...common}>{placed}</g>;
  const open = (e: MouseEvent) => {
    // The app's link handler skips SVG links (their `target` is an object):
    // open in place unless the user asked for a new tab.
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return (
    <a {...common} href={href} onClick={open} aria-label={title}>
      {placed}
    </a>
  );
}

function ArtifactGlyph({ type }: { type: string }) {
  if (type === "dataset")
    return (
      <g class="lg-glyph">
        <ellipse cx="8" cy="3.5" rx="7" ry="3" />
        <path d="M1 3.5v9c0 1.7 3.1 3 7 3s7-1.3 7-3v-9M1 8c0 1.7 3.1 3 7 3s7-1.3 7-3" />
      </g>
    );
  if (type === "model")
    return (
      <g class="lg-glyph">
        <path d="M8 0.8l7 4v7.4l-7 4-7-4V4.8z" />
        <path d="M1 4.8l7 4 7-4M8 8.8v7.4" />
      </g>
    );
  return (
    <g class="lg-glyph">
      <path d="M2.5 0.8h7l4 4v10.4h-11z" />
      <path d="M9.5 0.8v4h4" />
    </g>
  );
}

function RunGlyph({ status }: { status: string }) {
  return (
    <g class={`lg-glyph lg-status-${status}`}>
      <circle cx="8" cy="8" r="7.2" />
      <path class="lg-play" d="M6.3 4.8l4.6 3.2-4.6 3.2z" />
    </g>
  );
}
