"""Tabulates the JSON lines of the Rust and Python benchmarks against the targets."""

from __future__ import annotations

import datetime
import json
import os
import platform
import sys

# figure: (label, target as text, check, peers measured on this kind of
# machine in 2026-11, from ../shared/field-notes.md — the side-by-side run
# against installed peers is `make bench-peers`, a later step)
TARGETS = {
    "import": (
        "import labbook",
        "≤ 10 ms",
        lambda m: m <= 10,
        "mlflow 1.5–4.5 s · wandb 0.9 s · expman-rs 5 ms",
    ),
    "init": ("labbook.init()", "–", None, ""),
    "capture": ("capture at init", "≤ 150 ms", lambda m: m <= 150, ""),
    "log_2_keys": (
        "log() 2 keys",
        "≤ 0.5 µs",
        lambda m: m <= 0.5,
        "mlflow 574 µs · wandb 354 µs · expman-rs 2.0 µs",
    ),
    "log_20_keys": ("log() 20 keys", "–", None, ""),
    "finish": ("finish()", "bounded", None, ""),
    "python_bulk_ingest": (
        "bulk ingest, Python",
        "≥ 5M pts/s",
        lambda m: m >= 5e6,
        "expman-rs 255k/s",
    ),
    "rust_ingest": ("bulk ingest, Rust", "≥ 20M pts/s", lambda m: m >= 20e6, ""),
    "disk_noisy_f64": (
        "disk, noisy float64",
        "≤ 8 B/pt",
        lambda m: m <= 8,
        "mlflow 243 B · expman-rs 15–17 B",
    ),
    "disk_f32_valued": ("disk, float32-valued", "≤ 4 B/pt", lambda m: m <= 4, ""),
    "read_1m": (
        "read 1M-point history",
        "≤ 20 ms",
        lambda m: m <= 20,
        "mlflow 50k points in 1.5 s",
    ),
    "downsample_10m": ("1,000-bucket downsample of 10M", "–", None, ""),
    "api_runs_page_10k": (
        "API: 10k runs, page sorted by metric",
        "≤ 50 ms",
        lambda m: m <= 50,
        "MLflow UI ~1 min for 500 runs",
    ),
    "api_runs_filtered_10k": ("API: 10k runs, filtered + sorted", "–", None, ""),
    "ui_runs_interactive_10k": (
        "UI: 10k-run table interactive",
        "≤ 1.5 s",
        lambda m: m <= 1500,
        "",
    ),
    "api_series_100x100k": ("API: 100 runs × 100k steps chart", "≤ 150 ms", lambda m: m <= 150, ""),
    "api_series_columns_100x100k": (
        "API: that chart as binary columns",
        "–",
        None,
        "",
    ),
    "api_series_dashboard_100x100k": (
        "API: that chart as the dashboard asks it (375 buckets)",
        "–",
        None,
        "",
    ),
    "ui_chart_drawn_100x100k": (
        "UI: that chart drawn",
        "≤ 0.5 s",
        lambda m: m <= 500,
        "MLflow UI 31–34 s",
    ),
    "api_runs_page_nested_5k": ("API: 5k nested runs, first page", "–", None, ""),
    "api_runs_all_nested_5k": ("API: 5k nested runs, all of them", "–", None, ""),
    "api_runs_tree_nested_5k": ("API: 5k nested runs, tree shape", "–", None, ""),
    "ui_runs_interactive_nested_5k": (
        "UI: 5k-run nested table interactive",
        "≤ 1 s",
        lambda m: m <= 1000,
        "",
    ),
    "api_preview_csv_100mb": ("API: 100 MB CSV preview", "–", None, ""),
    "ui_preview_csv_100mb": (
        "UI: 100 MB CSV preview, click to rows",
        "≤ 300 ms",
        lambda m: m <= 300,
        "",
    ),
    "ui_preview_csv_100mb_page": ("UI: 100 MB CSV preview, page load", "–", None, ""),
    "snapshot_init": (
        "init() with the code snapshot (2,000 files, 20 changed, 20 untracked)",
        "≤ 150 ms",
        lambda m: m <= 150,
        "",
    ),
    "snapshot_init_off": ("init() with the snapshot off", "–", None, ""),
    "snapshot_background": ("the snapshot's work, on the capture thread", "–", None, ""),
    "replay_plan": ("labbook replay --dry-run (the plan alone)", "–", None, ""),
    "replay_overhead": ("labbook replay → the program's first statement", "–", None, ""),
    "replay_overhead_inner": ("labbook replay → the program spawned", "–", None, ""),
    "w11_disk_copy": ("disk copy speed, cp -r + sync (the limit)", "–", None, ""),
    "artifact_log_new": (
        "log a new 2 GB folder of 10k files",
        "≥ 1 GB/s",
        lambda m: m >= 1.0,
        "bench/results/*-w11.md",
    ),
    "artifact_hash_new": ("hash that folder only (use_dataset)", "–", None, ""),
    "artifact_relog": (
        "log that folder again, unchanged",
        "≤ 50 ms",
        lambda m: m <= 50,
        "",
    ),
    "artifact_relog_bytes": ("bytes stored by that re-log", "0", lambda m: m == 0, ""),
    "artifact_download": ("download that version", "≤ 0.5 s", lambda m: m <= 500, ""),
    "gc_100k": ("gc over 100k blobs", "≤ 5 s", lambda m: m <= 5, ""),
}


def fmt(value: float, unit: str) -> str:
    if unit == "points/s":
        return f"{value / 1e6:.1f}M pts/s"
    if unit == "us/call":
        return f"{value:.3f} µs"
    if unit == "bytes/point":
        return f"{value:.2f} B/pt"
    return f"{value:.2f} {unit}"


def markdown(by_figure: dict[str, dict[str, object]], started: str) -> str:
    """The results as a file for bench/results/: the one place the README's
    targets table is generated from (bench/readme_speed.py)."""
    lines = [
        f"# labbook's own targets: {started[:10]}",
        "",
        "`make bench` on one machine: medians over repetitions with min–max. The",
        "machine is shared; re-run before trusting a small delta. Peers, side by side",
        "in one run, are in the newest `bench/results/YYYY-MM-DD.md` (`make bench-peers`).",
        "",
        f"- Machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"{platform.platform()}",
        f"- Started: {started}",
        "",
        "## Figures",
        "",
        "| figure | labbook | min–max | target | met |",
        "|---|---:|---:|---:|---|",
    ]
    for key, (label, target, check, _) in TARGETS.items():
        r = by_figure.get(key)
        if r is None:
            lines.append(f"| {label} | not measured | | {target} | no |")
            continue
        median, low, high, unit = r["median"], r["min"], r["max"], str(r["unit"])
        assert isinstance(median, float | int) and isinstance(low, float | int)
        assert isinstance(high, float | int)
        met = "–" if check is None else ("yes" if check(median) else "**no**")
        spread = f"{fmt(low, unit)} – {fmt(high, unit)}"
        lines.append(f"| {label} | {fmt(median, unit)} | {spread} | {target} | {met} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    out = sys.argv[sys.argv.index("--markdown") + 1] if "--markdown" in sys.argv else None
    rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
    by_figure = {r["figure"]: r for r in rows}
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(markdown(by_figure, started))
    print(f"\nlabbook benchmark · {platform.node()} · {platform.processor() or platform.machine()}")
    print(
        "medians over repetitions (min–max); the machine is shared, so re-run before trusting a small delta\n"
    )
    header = f"{'figure':<32} {'labbook (median)':>18} {'min–max':>28} {'target':>13}  ok   peers"
    print(header)
    print("-" * len(header))
    failed = []
    for key, (label, target, check, peers) in TARGETS.items():
        r = by_figure.get(key)
        if r is None:
            print(f"{label:<32} {'(not measured)':>18}")
            failed.append(key)
            continue
        spread = f"{fmt(r['min'], r['unit'])} – {fmt(r['max'], r['unit'])}"
        verdict = "" if check is None else ("yes" if check(r["median"]) else "NO")
        if verdict == "NO":
            failed.append(key)
        print(
            f"{label:<32} {fmt(r['median'], r['unit']):>18} {spread:>28} {target:>13}  {verdict:<4} {peers}"
        )
    if failed:
        print(f"\nmissed or missing: {', '.join(failed)}")


if __name__ == "__main__":
    main()
