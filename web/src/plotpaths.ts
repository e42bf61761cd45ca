// Canvas paths for chart panels that give uPlot each run's own points
// (its faceted mode: a series' data is [xs, ys]) instead of every run
// aligned on one shared x axis. Aligning 100 downsampled runs, whose steps
// all differ, took a grid of thousands of slots per run and most of a
// chart's first draw; here a run's line is built from its own points with
// the scales' arithmetic done inline.
import uPlot from "uplot";
import { visibleRange } from "./chartdata";

/** A series' points as the panel hands them to uPlot: sorted xs, and ys
 * with null where the curve has a gap. */
export type Facet = [xs: ArrayLike<number>, ys: ArrayLike<number | null>];

/** Panel data in faceted form: uPlot's slot 0 is unused. */
export type FacetedData = [null, ...Facet[]];

/** The chart's faceted data as uPlot's constructor types it (its type
 * declarations describe only the aligned form). */
export function asUplotData(data: FacetedData): uPlot.AlignedData {
  return data as unknown as uPlot.AlignedData;
}

/** A series' facet, read back from a faceted uPlot. */
export function facetOf(u: uPlot, si: number): Facet {
  return (u.data as unknown as FacetedData)[si] as Facet;
}

/** From data values to canvas pixels on u's current scales: x linear, y
 * linear or log10. */
type Mapping = { xmin: number; xmax: number; x0: number; kx: number; log: boolean; y0: number; ky: number; bottom: number };

function mapping(u: uPlot): Mapping {
  const { left, top, width, height } = u.bbox;
  const sx = u.scales.x;
  const sy = u.scales.y;
  const xmin = sx.min ?? 0;
  const xmax = sx.max ?? 1;
  const log = sy.distr === 3;
  const lo = log ? Math.log10(sy.min ?? 1) : (sy.min ?? 0);
  const hi = log ? Math.log10(sy.max ?? 10) : (sy.max ?? 1);
  return { xmin, xmax, x0: left - xmin * (width / (xmax - xmin || 1)), kx: width / (xmax - xmin || 1), log, y0: lo, ky: height / (hi - lo || 1), bottom: top + height };
}

const NO_BANDS = 0;

/** The line through a series' points, broken at nulls. Only the points
 * in view are visited (and one beyond each edge, whose segment enters it). */
export const curvePaths: uPlot.Series.PathBuilder = (u, si) => {
  const [xs, ys] = facetOf(u, si);
  const { xmin, xmax, x0, kx, log, y0, ky, bottom } = mapping(u);
  const stroke = new Path2D();
  const [i0, i1] = visibleRange(xs, xmin, xmax);
  // The scales' arithmetic inline and in locals: this loop meets each of a
  // panel's points once, on a first draw still in the interpreter.
  let pen = false;
  for (let i = i0; i <= i1; i++) {
    const y = ys[i];
    if (y === null || y === undefined) {
      pen = false;
      continue;
    }
    const px = x0 + xs[i] * kx;
    const py = bottom - ((log ? Math.log10(y) : y) - y0) * ky;
    if (pen) stroke.lineTo(px, py);
    else {
      stroke.moveTo(px, py);
      pen = true;
    }
  }
  return { stroke, fill: null, clip: null, band: null, flags: NO_BANDS };
};

/** A dot on each of a series' points in view. */
export const curvePoints: uPlot.Series.Points.PathBuilder = (u, si) => {
  const [xs, ys] = facetOf(u, si);
  const m = mapping(u);
  const pts = u.series[si].points ?? {};
  const ratio = uPlotRatio();
  const rad = (((pts.size ?? 4) - (pts.width ?? 1)) / 2) * ratio;
  const fill = new Path2D();
  const clip = new Path2D();
  const { left, top, width, height } = u.bbox;
  clip.rect(left - 2 * rad, top - 2 * rad, width + 4 * rad, height + 4 * rad);
  const [i0, i1] = visibleRange(xs, m.xmin, m.xmax, false);
  for (let i = i0; i <= i1; i++) {
    const y = ys[i];
    if (y === null || y === undefined) continue;
    const px = m.x0 + xs[i] * m.kx;
    const py = m.bottom - ((m.log ? Math.log10(y) : y) - m.y0) * m.ky;
    fill.moveTo(px + rad, py);
    fill.arc(px, py, rad, 0, 2 * Math.PI);
  }
  return { stroke: (pts.width ?? 0) > 0 ? fill : null, fill, clip, flags: 3 };
};

/** Dots only where a series' points in view are sparse: each has at least
 * its points' `space` (CSS px) to itself, as uPlot decides for its own. */
export function fewPoints(u: uPlot, si: number): boolean {
  const [xs] = facetOf(u, si);
  const m = mapping(u);
  const [i0, i1] = visibleRange(xs, m.xmin, m.xmax, false);
  const space = (u.series[si].points?.space ?? 8) * uPlotRatio();
  return i1 - i0 + 1 <= u.bbox.width / space;
}

/** The index of the point of series `si` nearest to the cursor's x, for
 * the hover dot (faceted uPlot leaves this to the chart). */
export function hoverIndex(u: uPlot, si: number): number | null {
  if (si === 0) return null;
  const left = u.cursor.left ?? -1;
  if (left < 0) return null;
  const [xs, ys] = facetOf(u, si);
  const x = u.posToVal(left, "x");
  const [i0, i1] = visibleRange(xs, x, x);
  let best: number | null = null;
  for (let i = i0; i <= i1; i++) {
    if (ys[i] === null || ys[i] === undefined) continue;
    if (best === null || Math.abs(xs[i] - x) < Math.abs(xs[best] - x)) best = i;
  }
  return best;
}

/** Canvas pixels per CSS pixel, as uPlot sizes its canvas. */
function uPlotRatio(): number {
  return uPlot.pxRatio || 1;
}
