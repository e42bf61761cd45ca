"""`make bench-scale`: labbook's costs as the store grows.

Store (a) grows 1,000 → 10,000 → 100,000 runs (20 config keys, 10 metrics
of 100 points each) through the store's Rust API (the `scale_store`
example); after each step every figure is measured again. Store (b) holds
long curves (`--long-runs` runs of `--long-points` points each; 1,000 of 1M is a
billion points) for reads, charts and disk per point.

Each "first" figure is taken in a fresh process (or a freshly started
`labbook serve`), the way a person meets it: a new Python session, a new
terminal command, a dashboard opened. Figures are medians over repetitions.

Prints JSON lines; `--markdown FILE` writes the table committed under
bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("LABBOOK_BIN", REPO / "target" / "release" / "labbook"))
BUILDER = REPO / "target" / "release" / "examples" / "scale_store"
PROJECT = "scale"
# A quarter of the runs have lr 0.01 and 1 % reach acc > 0.99: 0.25 % match.
SEARCH = "config.lr = 0.01 and metrics.acc > 0.99"
SORT = "-metrics.acc"

FIRST_QUERY = """
import sys, time, json
t0 = time.perf_counter()
import labbook
api = labbook.Api(dir=sys.argv[1])
t1 = time.perf_counter()
found = api.runs(project=sys.argv[2], filter=sys.argv[3] or None, sort=sys.argv[4] or None, limit=50)
t2 = time.perf_counter()
again = []
for _ in range(9):
    t = time.perf_counter()
    api.runs(project=sys.argv[2], filter=sys.argv[3] or None, sort=sys.argv[4] or None, limit=50)
    again.append(time.perf_counter() - t)
print(json.dumps({"open": (t1 - t0) * 1e3, "first": (t2 - t1) * 1e3,
                  "repeat": sorted(again)[4] * 1e3, "found": len(found)}))
"""

READ_HISTORY = """
import sys, time, json
import labbook
api = labbook.Api(dir=sys.argv[1])
api.run(sys.argv[2])
t = time.perf_counter()
h = api.history(sys.argv[2], sys.argv[3])
print(json.dumps({"read": (time.perf_counter() - t) * 1e3, "points": len(h["value"])}))
"""


def log(msg: str) -> None:
    print(f"[bench-scale] {msg}", file=sys.stderr, flush=True)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def disk_bytes(store: Path) -> int:
    return sum(f.stat().st_size for f in store.iterdir() if f.name.startswith("labbook.db"))


def build(store: Path, start: int, runs: int, extra: list[str]) -> dict[str, Any]:
    cmd = [str(BUILDER), str(store), "--from", str(start), "--runs", str(runs), *extra]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def python_child(code: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", code, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def wall_ms(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return (time.perf_counter() - t) * 1e3


def number(v: float) -> str:
    """Three significant digits, thousands separated."""
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A fresh `labbook serve` on the store."""

    def __init__(self, store: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(BIN), "--dir", str(store), "serve", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                self.get("/health")
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("labbook serve did not start")

    def get(self, path: str) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}")
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.read()

    def timed(self, path: str) -> float:
        t = time.perf_counter()
        self.get(path)
        return (time.perf_counter() - t) * 1e3

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def browser(store: Path, figure: str, env: dict[str, str], curve_ids: str = "") -> float | None:
    """The median of bench/ui_browser.mjs's `figure` against a fresh server
    on `store`; None (and a note why) where Chromium or the dashboard's
    node modules are missing."""
    script = REPO / "bench" / "ui_browser.mjs"
    chromium = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if (
        not (REPO / "web" / "node_modules" / "playwright-core").is_dir()
        or not Path(chromium).exists()
    ):
        log(f"{figure}: skipped, no Chromium or web/node_modules (run `make build`)")
        return None
    server = Server(store)
    try:
        out = subprocess.run(
            ["node", str(script), f"http://127.0.0.1:{server.port}", curve_ids or "-", "-"],
            env={**os.environ, **env, "LABBOOK_BENCH_ONLY": figure},
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout
    finally:
        server.stop()
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return float(rows[0]["median"]) if rows else None


def runs_path(filter_: str = "", sort: str = "", limit: int = 50) -> str:
    q = {"limit": str(limit)}
    if filter_:
        q["filter"] = filter_
    if sort:
        q["sort"] = sort
    return f"/api/v1/projects/{PROJECT}/runs?{urllib.parse.urlencode(q)}"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.figures: list[dict[str, Any]] = []

    def emit(self, store: str, size: str, figure: str, value: float, unit: str, how: str) -> None:
        row = {
            "store": store,
            "size": size,
            "figure": figure,
            "value": value,
            "unit": unit,
            "how": how,
        }
        self.figures.append(row)
        print(json.dumps(row), flush=True)

    def runs_store(self, store: Path, runs: int) -> None:
        size = f"{runs:,} runs"
        reps = self.args.reps
        self.emit("a", size, "disk", disk_bytes(store) / 1e6, "MB", "labbook.db after a checkpoint")
        for name, filter_, sort in (
            ("search", SEARCH, SORT),
            ("sort", "", SORT),
            ("newest", "", ""),
        ):
            samples = [
                python_child(FIRST_QUERY, str(store), PROJECT, filter_, sort) for _ in range(reps)
            ]
            what = {
                "search": f'filter "{SEARCH}", sort "{SORT}", limit 50',
                "sort": f'every run sorted by "{SORT}", limit 50',
                "newest": "the newest 50 runs",
            }[name]
            if name == "search":
                self.emit(
                    "a",
                    size,
                    "Api open",
                    median([s["open"] for s in samples]),
                    "ms",
                    "import labbook + labbook.Api(dir) in a fresh interpreter",
                )
            self.emit(
                "a",
                size,
                f"Api first {name}",
                median([s["first"] for s in samples]),
                "ms",
                f"Api.runs: {what}; first call in a fresh process",
            )
            self.emit(
                "a",
                size,
                f"Api repeated {name}",
                median([s["repeat"] for s in samples]),
                "ms",
                "the same call again in that process (median of 9)",
            )
        base = [str(BIN), "--dir", str(store), "ls", "--project", PROJECT, "--no-color"]
        self.emit(
            "a",
            size,
            "labbook ls",
            median([wall_ms(base) for _ in range(reps)]),
            "ms",
            "`labbook ls` (the newest 50) wall time",
        )
        self.emit(
            "a",
            size,
            "labbook ls search",
            median([wall_ms([*base, "--filter", SEARCH, "--sort", SORT]) for _ in range(reps)]),
            "ms",
            f'`labbook ls --filter "{SEARCH}" --sort {SORT}` wall time',
        )
        page, keys, search, sort, again, rss_searched, rss = [], [], [], [], [], [], []
        for _ in range(reps):
            server = Server(store)
            try:
                # What the dashboard's runs page asks for first: the page and
                # the keys its column picker offers.
                page.append(server.timed(runs_path()))
                keys.append(server.timed(f"/api/v1/projects/{PROJECT}/keys"))
                search.append(server.timed(runs_path(SEARCH, SORT)))
                rss_searched.append(server.rss_mb())
                sort.append(server.timed(runs_path("", SORT)))
                again.append(median([server.timed(runs_path(SEARCH, SORT)) for _ in range(9)]))
                rss.append(server.rss_mb())
            finally:
                server.stop()
        api = f"GET {runs_path()[: runs_path().index('?')]}"
        self.emit(
            "a", size, "API first runs page", median(page), "ms", f"{api}?limit=50, fresh server"
        )
        self.emit(
            "a",
            size,
            "API first keys",
            median(keys),
            "ms",
            f"GET /api/v1/projects/{PROJECT}/keys (the column picker's), next",
        )
        self.emit("a", size, "API first search", median(search), "ms", f"{api} filter + sort, next")
        self.emit(
            "a", size, "API first sort", median(sort), "ms", f"{api} sorted by a metric, next"
        )
        self.emit("a", size, "API repeated search", median(again), "ms", "the search again (x9)")
        self.emit(
            "a",
            size,
            "serve RSS after page and search",
            median(rss_searched),
            "MB",
            "`labbook serve` resident memory after the page, the keys and the search",
        )
        self.emit(
            "a",
            size,
            "serve RSS",
            median(rss),
            "MB",
            "`labbook serve` resident memory after the page, the keys, the search and the sort",
        )
        interactive = browser(
            store, "ui_runs_interactive_10k", {"LABBOOK_BENCH_RUNS_PAGE": f"/p/{PROJECT}"}
        )
        if interactive is not None:
            self.emit(
                "a",
                size,
                "browser runs page interactive",
                interactive,
                "ms",
                f"headless Chromium: /p/{PROJECT} loaded until a row's checkbox takes a click"
                " (bench/ui_browser.mjs), fresh server",
            )

    def long_store(self, store: Path, runs: int, points: int) -> None:
        size = f"{runs:,} runs × {points:,} points"
        reps = self.args.reps
        total = runs * points
        self.emit(
            "b",
            size,
            "disk per point",
            disk_bytes(store) / total,
            "B/point",
            "labbook.db after a checkpoint, over every point (noisy float64 curves)",
        )
        ids = json.loads(
            subprocess.run(
                [
                    str(BIN),
                    "--dir",
                    str(store),
                    "ls",
                    "--project",
                    PROJECT,
                    "--limit",
                    "0",
                    "--json",
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        run_ids = [r["id"] for r in ids]
        opens = [
            python_child(FIRST_QUERY, str(store), PROJECT, "", "")["open"] for _ in range(reps)
        ]
        self.emit("b", size, "Api open", median(opens), "ms", "import labbook + labbook.Api(dir)")
        rust = [
            json.loads(
                subprocess.run(
                    [str(BUILDER), str(store), "--read", run_ids[0]],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            for _ in range(reps)
        ]
        self.emit(
            "b",
            size,
            "Rust store open",
            median([r["open_ms"] for r in rust]),
            "ms",
            "SqliteStore::open in a fresh process",
        )
        self.emit(
            "b",
            size,
            "Rust full history read",
            median([r["read_ms"] for r in rust]),
            "ms",
            f"read_series of one run's {points:,} points (median of 5 in each process)",
        )
        reads = [python_child(READ_HISTORY, str(store), run_ids[0], "acc") for _ in range(reps)]
        self.emit(
            "b",
            size,
            "Python full history read",
            median([r["read"] for r in reads]),
            "ms",
            f"Api.history of one run's {points:,} points, fresh process, store opened untimed",
        )
        chart = run_ids[:100]
        path = "/api/v1/series?" + urllib.parse.urlencode(
            {"runs": ",".join(chart), "keys": "acc", "buckets": "1000"}
        )
        # What the dashboard's chart of 100 runs asks (web/src/api.ts,
        # chartdata.ts bucketsFor): 375 buckets a run, packed columns, and
        # no wall times on a step axis.
        dashboard_path = "/api/v1/series?" + urllib.parse.urlencode(
            {
                "runs": ",".join(chart),
                "keys": "acc",
                "buckets": "375",
                "ts": "0",
                "format": "columns",
            }
        )
        for label, request, detail in (
            ("", path, "GET /api/v1/series of one metric over 1,000 buckets, JSON rows with times"),
            (
                ", the dashboard's request",
                dashboard_path,
                "GET /api/v1/series as the dashboard's chart asks: 375 buckets, columns, no times",
            ),
        ):
            first, again = [], []
            for _ in range(reps):
                server = Server(store)
                try:
                    first.append(server.timed(request))
                    again.append(median([server.timed(request) for _ in range(5)]))
                finally:
                    server.stop()
            name = f"API chart of {len(chart)} runs{label}"
            self.emit("b", size, name, median(first), "ms", f"{detail}, fresh server")
            self.emit("b", size, f"{name}, again", median(again), "ms", "x5")
        drawn = browser(
            store,
            "ui_chart_drawn_100x100k",
            {"LABBOOK_BENCH_CHART_PROJECT": PROJECT, "LABBOOK_BENCH_CHART_METRIC": "acc"},
            ",".join(chart),
        )
        if drawn is not None:
            self.emit(
                "b",
                size,
                f"browser chart of {len(chart)} runs drawn",
                drawn,
                "ms",
                "headless Chromium: /p/scale/charts?runs= until every curve is drawn"
                " (bench/ui_browser.mjs), fresh server",
            )

    def run(self) -> None:
        work = Path(self.args.workdir or tempfile.mkdtemp(prefix="labbook-scale-"))
        try:
            if self.args.sizes:
                store = work / "runs" / ".labbook"
                done = 0
                for size in self.args.sizes:
                    log(f"store (a): building runs {done:,} → {size:,}")
                    made = build(store, done, size, [])
                    log(f"  {made['runs_per_s']:,.0f} runs/s")
                    done = size
                    self.runs_store(store, size)
            if self.args.long_runs:
                store = work / "long" / ".labbook"
                log(f"store (b): {self.args.long_runs:,} runs × {self.args.long_points:,} points")
                made = build(
                    store,
                    0,
                    self.args.long_runs,
                    [
                        "--metrics",
                        "1",
                        "--points",
                        str(self.args.long_points),
                        "--config-keys",
                        "4",
                    ],
                )
                log(f"  {made['points_per_s'] / 1e6:,.1f}M points/s")
                self.long_store(store, self.args.long_runs, self.args.long_points)
        finally:
            if not self.args.keep:
                shutil.rmtree(work, ignore_errors=True)

    def markdown(self, path: Path) -> None:
        lines = [
            f"# labbook at scale: {time.strftime('%Y-%m-%d', time.gmtime())}",
            "",
            f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python "
            f"{platform.python_version()}. Made by `make bench-scale` (bench/scale_bench.py).",
            "",
        ]
        for store, title in (
            ("a", "Store (a): runs of 20 config keys and 10 metrics × 100 points"),
            ("b", "Store (b): long curves"),
        ):
            rows = [f for f in self.figures if f["store"] == store]
            if not rows:
                continue
            sizes = list(dict.fromkeys(f["size"] for f in rows))
            names = list(dict.fromkeys(f["figure"] for f in rows))
            lines += [f"## {title}", "", "| figure | " + " | ".join(sizes) + " | how |"]
            lines.append("|---|" + "---:|" * len(sizes) + "---|")
            for name in names:
                cells, how, unit = [], "", ""
                for size in sizes:
                    hit = [f for f in rows if f["figure"] == name and f["size"] == size]
                    cells.append(number(hit[0]["value"]) if hit else "")
                    if hit:
                        how, unit = hit[0]["how"], hit[0]["unit"]
                lines.append(f"| {name} ({unit}) | " + " | ".join(cells) + f" | {how} |")
            lines.append("")
        path.write_text("\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",") if x],
        default=[1_000, 10_000, 100_000],
        help="store (a) sizes, in runs (empty: skip store (a))",
    )
    p.add_argument("--long-runs", type=int, default=1_000, help="store (b) runs (0: skip)")
    p.add_argument("--long-points", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--workdir", default=None)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--markdown", type=Path, default=None)
    p.add_argument(
        "--report",
        type=Path,
        nargs="*",
        default=None,
        help="measure nothing: render --markdown from these JSON-line files (later rows win)",
    )
    args = p.parse_args()
    bench = Bench(args)
    if args.report is not None:
        rows: dict[tuple[str, str, str], dict[str, Any]] = {}
        for path in args.report:
            for line in path.read_text().splitlines():
                row = json.loads(line)
                rows[(row["store"], row["size"], row["figure"])] = row
        bench.figures = list(rows.values())
    else:
        bench.run()
    if args.markdown:
        bench.markdown(args.markdown)


if __name__ == "__main__":
    main()
