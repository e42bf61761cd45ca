"""Writes `bench/results/<date>.md`: labbook beside its peers, workloads W1 to W10.

Reads three files, each optional except the first:

- the JSON lines of `bench/peers.py` (W1 to W7, labbook, MLflow, W&B, trackio, expman-rs),
- `bench/mlflow_server.py`'s JSON (W8: the same MLflow client code against
  `labbook serve` and `mlflow server`; W9: their cold start and idle memory),
- the JSON lines of `bench/ui_peers.mjs` (W10: the first chart drawn in headless
  Chromium, labbook's dashboard against MLflow's UI), in peers.py's row format.

    .venv/bin/python bench/peers_report.py            # the default paths under bench/out
    .venv/bin/python bench/peers_report.py --peers /tmp/peers.jsonl --out /tmp/peers.md

Every ratio, and the list of figures where labbook is not ahead, is computed
from the medians in those files.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from peers import machine as describe_machine  # bench/peers.py, beside this file

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
TOOL_ORDER = ("labbook", "mlflow", "wandb", "trackio", "expman")
TOOL_NAMES = {
    "labbook": "labbook",
    "mlflow": "MLflow",
    "wandb": "W&B",
    "trackio": "trackio",
    "expman": "expman-rs",
}

WORKLOADS = {
    "W1": "import time",
    "W2": "init latency (a run with a 4-key config)",
    "W3": "in-loop `log()` overhead and `finish()` latency",
    "W4": "bulk ingest through each tool's fastest path",
    "W5": "disk bytes per point",
    "W6": "read a full 1M-point history",
    "W7": "search/filter over 10,000 runs (a metric and a param condition)",
    "W8": "the same MLflow client code against `labbook serve` and `mlflow server`",
    "W9": "server cold start and idle memory: `labbook serve` and `mlflow server`",
    "W10": "first chart of 100 runs × 100k points drawn in headless Chromium",
}

FIGURES = {
    "import": "import",
    "init_new_store": "init, new store",
    "init": "init, existing store",
    "log_2_keys": "log(), 2 keys",
    "log_20_keys": "log(), 20 keys",
    "finish": "finish()",
    "bulk_ingest": "bulk ingest",
    "disk_noisy_f64": "noisy float64 curve",
    "disk_f32_valued": "float32-valued curve",
    "read_1m": "read full history",
    "search_10k": "search, first query",
    "search_10k_repeat": "search, repeated",
    "chart_100x100k": "first chart drawn",
}

# mlflow_server.py's figures that become W8 and W9 rows: (workload, its name, our label).
SERVER_FIGURES = (
    ("W8", "log_metric", "log_metric (client)"),
    ("W8", "raw_log_metric", "log_metric (raw HTTP)"),
    ("W8", "log_batch_1000", "log_batch of 1,000 (client)"),
    ("W8", "raw_log_batch_1000", "log_batch of 1,000 (raw HTTP)"),
    ("W8", "metric_history_3000", "get_metric_history, 3,000 points (client)"),
    ("W8", "raw_metric_history_3000", "get_metric_history, 3,000 points (raw HTTP)"),
    ("W8", "search_runs", "search_runs over 10k runs (client)"),
    ("W8", "raw_search_runs", "search_runs over 10k runs (raw HTTP)"),
    ("W9", "startup", "cold start to first /health"),
    ("W9", "idle_rss", "idle memory (RSS, process tree)"),
    ("W9", "idle_pss", "idle memory (PSS, process tree)"),
)

HIGHER_IS_BETTER = {"points/s", "fps", "ops/s"}
# What "better" is called for a unit: (better, worse).
WORDS = {
    "bytes/point": ("smaller", "larger"),
    "MB": ("smaller", "larger"),
    "MiB": ("smaller", "larger"),
    "B": ("smaller", "larger"),
    "count": ("fewer", "more"),
}
SAME_WITHIN = 1.05  # medians closer than 5% read as "about the same"


@dataclass
class Row:
    workload: str
    figure: str
    tool: str
    unit: str
    median: float | None
    low: float | None
    high: float | None
    n: int
    note: str
    # A run that hit its time cap: the real median is at least this (W10).
    lower_bound: bool = False

    @classmethod
    def from_json(cls, d: dict[str, Any], workload: str | None = None) -> Row:
        return cls(
            workload=workload or str(d.get("workload", "")),
            figure=str(d.get("figure", "")),
            tool=str(d.get("tool", "")),
            unit=str(d.get("unit", "")),
            median=number(d.get("median")),
            low=number(d.get("min")),
            high=number(d.get("max")),
            n=int(d.get("n") or 0),
            note=str(d.get("note", "")),
            lower_bound=bool(d.get("lower_bound", False)),
        )

    @property
    def shown(self) -> str:
        """The median as the tables print it."""
        return ("≥ " if self.lower_bound else "") + fmt(self.median, self.unit)

    @property
    def measured(self) -> bool:
        return self.median is not None

    @property
    def value(self) -> float:
        """The median of a measured row."""
        if self.median is None:
            raise ValueError(f"{self.workload} {self.figure} {self.tool}: not measured")
        return self.median


def number(value: Any) -> float | None:
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


# --------------------------------------------------------------------------- formatting


def sig(value: float, digits: int = 3) -> str:
    """`value` to about `digits` significant digits, with thousands separators."""
    if value == 0:
        return "0"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    return f"{value:,.{decimals}f}"


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "points/s":
        if value >= 1e6:
            return f"{sig(value / 1e6)}M pts/s"
        if value >= 1e3:
            return f"{sig(value / 1e3)}k pts/s"
        return f"{sig(value)} pts/s"
    if unit == "us/call":
        return f"{sig(value)} µs" if value < 1000 else f"{sig(value / 1000)} ms"
    if unit == "ms":
        if value < 1:
            return f"{sig(value * 1000)} µs"
        return f"{sig(value)} ms" if value < 10_000 else f"{sig(value / 1000)} s"
    if unit == "s":
        return f"{sig(value * 1000)} ms" if value < 1 else f"{sig(value)} s"
    if unit == "bytes/point":
        return f"{sig(value)} B/pt"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{sig(value)} {unit}".strip()


def times(ratio: float) -> str:
    if ratio >= 100:
        return f"{ratio:,.0f}×"
    if ratio >= 10:
        return f"{ratio:.0f}×"
    return f"{ratio:.1f}×"


def better(a: float, b: float, unit: str) -> bool:
    """Whether median a beats median b."""
    return a > b if unit in HIGHER_IS_BETTER else a < b


def compare(lb: Row, peer: Row) -> str:
    """The headline ratio of a peer's row, read from labbook's side. A median
    that is only a lower bound (a capped run) makes the ratio one too, when
    the bounded side is the one behind; otherwise the ratio is uncertain."""
    a, b, unit = lb.value, peer.value, peer.unit
    if a <= 0 or b <= 0:
        return "–"
    good, bad = WORDS.get(unit, ("faster", "slower"))
    ratio = max(a, b) / min(a, b)
    ahead = better(a, b, unit)
    bound = ""
    if lb.lower_bound or peer.lower_bound:
        # For a lower-is-better figure a lower bound can only be worse still.
        behind_is_bounded = (peer.lower_bound and ahead) or (lb.lower_bound and not ahead)
        if (
            unit in HIGHER_IS_BETTER
            or not behind_is_bounded
            or (lb.lower_bound and peer.lower_bound)
        ):
            return "uncertain (capped run)"
        bound = "≥ "
    if not bound and ratio < SAME_WITHIN:
        return "about the same"
    return f"labbook {bound}{times(ratio)} {good if ahead else bad}"


# --------------------------------------------------------------------------- inputs


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            rows.append(json.loads(line))
    return rows


def server_rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    for tool in ("labbook", "mlflow"):
        server = data.get("servers", {}).get(tool)
        if not server:
            continue
        figures = server.get("figures", {})
        reused = server.get("reused_from")
        for workload, name, label in SERVER_FIGURES:
            f = figures.get(name)
            if not f:
                continue
            note = str(f.get("note", ""))
            if reused:
                note += f" (measured in an earlier run: {Path(reused).name})"
            rows.append(
                Row(
                    workload=workload,
                    figure=label,
                    tool=tool,
                    unit=str(f.get("unit", "")),
                    median=number(f.get("median")),
                    low=number(f.get("min")),
                    high=number(f.get("max")),
                    n=int(f.get("n") or 0),
                    note=note,
                )
            )
    return rows


# --------------------------------------------------------------------------- report


def tool_key(tool: str) -> tuple[int, str]:
    return (TOOL_ORDER.index(tool) if tool in TOOL_ORDER else len(TOOL_ORDER), tool)


def figure_label(name: str) -> str:
    return FIGURES.get(name, name)


def workload_key(w: str) -> tuple[int, str]:
    digits = w[1:]
    return (int(digits) if digits.isdigit() else 99, w)


def render(
    rows: list[Row],
    meta: dict[str, Any],
    elapsed: dict[str, Any],
    server: dict[str, Any] | None,
    ui_found: bool,
    ui_name: str,
    sources: list[str],
) -> str:
    out: list[str] = []
    machine = {**describe_machine(), **meta.get("machine", {})}
    started = meta.get("started", "")
    date = started[:10] or datetime.date.today().isoformat()
    out.append(f"# labbook beside its peers: {date}")
    out.append("")
    if meta.get("quick"):
        out.append(
            "**Quick run** (`--quick`: small sizes, one or two repetitions): for checking the "
            "harness, not for quoting."
        )
        out.append("")
    out.append(
        "Every workload ran on this one machine, labbook and each peer in turn, each measurement "
        "in a fresh process. The machine is shared and noisy: figures are medians over "
        "repetitions with min–max, and the ratio against labbook is the headline. How each "
        "workload is run on each tool: [bench/PEERS.md](../PEERS.md)."
    )
    out.append("")
    out.append("## Machine")
    out.append("")
    memory = machine.get("memory_gib")
    out.append(f"- CPU: {machine.get('cpu') or 'unknown'}, {machine.get('cores')} cores")
    out.append(f"- Memory: {memory} GiB" if memory else "- Memory: unknown")
    out.append(f"- OS: {machine.get('os', '')} ({machine.get('node', '')})")
    tools = meta.get("tools", {})
    pythons = sorted({v.get("python", "") for v in tools.values() if v.get("python")})
    out.append(f"- Python: {', '.join(pythons) or platform.python_version()}")
    if tools:
        versions = ", ".join(
            f"{TOOL_NAMES.get(t, t)} {tools[t].get('version', '?')}"
            for t in sorted(tools, key=tool_key)
        )
        out.append(f"- Versions (W1–W7): {versions}")
    if "loadavg_start" in machine:
        end = elapsed.get("loadavg_end")
        load = f"- Load average (1, 5, 15 min) at the start: {', '.join(f'{x:.2f}' for x in machine['loadavg_start'])}"
        if end:
            load += f"; at the end: {', '.join(f'{x:.2f}' for x in end)}"
        out.append(load)
    if started:
        took = elapsed.get("elapsed_s")
        out.append(
            f"- W1–W7 started {started}"
            + (f", took {took / 60:.1f} min" if isinstance(took, (int, float)) else "")
        )
    if server:
        m = server.get("machine", {})
        out.append(
            f"- W8–W9 (`bench/mlflow_server.py`): {server.get('when', '?')}, on {m.get('node', '?')} "
            f"({m.get('cpus', '?')} cores, {m.get('platform', '?')}), mlflow {m.get('mlflow', '?')}"
        )
    out.append(f"- Sources: {', '.join(sources)}")
    out.append("")

    by_workload: dict[str, list[Row]] = {}
    for row in rows:
        by_workload.setdefault(row.workload, []).append(row)

    # The headline: labbook against the best peer, figure by figure.
    not_ahead: list[str] = []
    summary: list[list[str]] = []
    for workload in sorted(by_workload, key=workload_key):
        for name in figure_names(by_workload[workload]):
            group = [r for r in by_workload[workload] if r.figure == name]
            lb = next((r for r in group if r.tool == "labbook"), None)
            peers = [r for r in group if r.tool != "labbook" and r.measured]
            if not peers:
                continue
            unit = peers[0].unit
            best = peers[0]
            for r in peers[1:]:
                if better(r.value, best.value, unit):
                    best = r
            label = f"{workload} {figure_label(name)}"
            if lb is None or not lb.measured:
                summary.append(
                    [
                        label,
                        "not measured",
                        f"{TOOL_NAMES.get(best.tool, best.tool)} {best.shown}",
                        "–",
                    ]
                )
                not_ahead.append(
                    f"- **{label}**: no labbook figure ({lb.note if lb else 'missing'})."
                )
                continue
            summary.append(
                [
                    label,
                    lb.shown,
                    f"{TOOL_NAMES.get(best.tool, best.tool)} {best.shown}",
                    compare(lb, best),
                ]
            )
            ahead_of_labbook = [r for r in peers if better(r.value, lb.value, unit)]
            for r in ahead_of_labbook:
                not_ahead.append(
                    f"- **{label}**: {TOOL_NAMES.get(r.tool, r.tool)} {r.shown} "
                    f"against labbook {lb.shown} ({compare(lb, r)})."
                )
    out.append("## Headline: labbook against the best peer on each figure")
    out.append("")
    out.append("| figure | labbook | best peer | labbook vs best peer |")
    out.append("|---|---:|---:|---|")
    for cells in summary:
        out.append("| " + " | ".join(cells) + " |")
    out.append("")

    for workload in sorted(set(by_workload) | {"W10"}, key=workload_key):
        title = WORKLOADS.get(workload, "")
        out.append(f"## {workload}: {title}" if title else f"## {workload}")
        out.append("")
        group = by_workload.get(workload, [])
        if not group:
            if workload == "W10":
                out.append(
                    f"Not measured (no `{ui_name}`: `bench/ui_peers.sh` writes it)."
                    if not ui_found
                    else f"Not measured (`{ui_name}` has no W10 rows)."
                )
            else:
                out.append("Not measured.")
            out.append("")
            continue
        out.append("| figure | tool | median | min–max | n | vs labbook |")
        out.append("|---|---|---:|---:|---:|---|")
        notes: list[str] = []
        for name in figure_names(group):
            figure_rows = sorted(
                (r for r in group if r.figure == name), key=lambda r: tool_key(r.tool)
            )
            lb = next((r for r in figure_rows if r.tool == "labbook" and r.measured), None)
            for r in figure_rows:
                tool = TOOL_NAMES.get(r.tool, r.tool)
                if not r.measured:
                    reason = "n/a" if r.note.startswith("n/a") else "failed"
                    out.append(f"| {figure_label(name)} | {tool} | {reason} | | | |")
                    notes.append(f"{tool}, {figure_label(name)}: {r.note}")
                    continue
                spread = f"{fmt(r.low, r.unit)} – {fmt(r.high, r.unit)}" if r.n > 1 else ""
                if r.tool == "labbook":
                    versus = "—"
                elif lb is not None:
                    versus = compare(lb, r)
                else:
                    versus = "–"
                out.append(
                    f"| {figure_label(name)} | {tool} | {r.shown} | {spread} | {r.n} | {versus} |"
                )
                if r.note:
                    notes.append(f"{tool}, {figure_label(name)}: {r.note}")
        out.append("")
        if notes:
            out.append("<details><summary>How each figure was measured</summary>")
            out.append("")
            for note in notes:
                out.append(f"- {note}")
            out.append("")
            out.append("</details>")
            out.append("")

    out.append("## Where labbook is not ahead")
    out.append("")
    if not_ahead:
        out.append(
            "Computed from the medians above: every figure where a peer's median beats "
            "labbook's, or labbook has none."
        )
        out.append("")
        out.extend(not_ahead)
    else:
        out.append("Nowhere: labbook's median is the best on every figure measured above.")
    missing = [w for w in WORKLOADS if w not in by_workload]
    if missing:
        out.append("")
        out.append(f"Not measured in this report: {', '.join(missing)}.")
    out.append("")
    return "\n".join(out)


def figure_names(rows: list[Row]) -> list[str]:
    names: list[str] = []
    for r in rows:
        if r.figure not in names:
            names.append(r.figure)
    return names


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--peers", default=str(OUT / "peers.jsonl"), help="bench/peers.py's JSON lines")
    p.add_argument(
        "--server",
        default=str(OUT / "mlflow_server.json"),
        help="bench/mlflow_server.py's JSON (W8, W9); skipped if absent",
    )
    p.add_argument(
        "--ui",
        default=str(OUT / "ui_peers.jsonl"),
        help="bench/ui_peers.mjs's JSON lines (W10); 'not measured' if absent",
    )
    p.add_argument("--out-dir", default=str(REPO / "bench" / "results"))
    p.add_argument("--out", default=None, help="the Markdown file (default: OUT_DIR/<date>.md)")
    args = p.parse_args(argv)

    rows: list[Row] = []
    meta: dict[str, Any] = {}
    elapsed: dict[str, Any] = {}
    sources: list[str] = []
    peers_path = Path(args.peers)
    if not peers_path.exists():
        raise SystemExit(f"{peers_path}: no such file (bench/peers.py writes it)")
    for d in read_jsonl(peers_path):
        if d.get("workload") == "meta":
            if d.get("figure") == "run":
                meta = d
            elif d.get("figure") == "elapsed":
                elapsed = d
            continue
        if d.get("figure") == "error":
            # A failed tool/workload: its figures are missing; say so in every table.
            rows.append(Row.from_json({**d, "figure": "error"}))
            continue
        rows.append(Row.from_json(d))
    sources.append(f"`{display(peers_path)}` (W1–W7)")

    server: dict[str, Any] | None = None
    server_path = Path(args.server)
    if server_path.exists():
        server = json.loads(server_path.read_text())
        rows += server_rows(server)
        sources.append(f"`{display(server_path)}` (W8–W9)")

    ui_path = Path(args.ui)
    ui_found = ui_path.exists()
    if ui_found:
        rows += [
            Row.from_json(d, workload=str(d.get("workload") or "W10")) for d in read_jsonl(ui_path)
        ]
        sources.append(f"`{display(ui_path)}` (W10)")

    text = render(rows, meta, elapsed, server, ui_found, display(ui_path), sources)
    date = (meta.get("started") or "")[:10] or datetime.date.today().isoformat()
    out = Path(args.out) if args.out else Path(args.out_dir) / f"{date}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {display(out)}", file=sys.stderr)


def display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    main(sys.argv[1:])
