"""W12 (issue 13): labbook's TPE against Optuna's, and what a trial costs each.

Three sides, each run in its own interpreter, one after the other:

- `labbook`: labbook's TPE (`labbook.study(..., sampler="tpe", seed=s)`),
- `optuna`:  Optuna's `TPESampler(seed=s)` with its defaults (5.1: multivariate
  and constant liar on), in-memory storage,
- `random`:  Optuna's `RandomSampler(seed=s)`, the floor both should beat.

Figures:

1. Simple regret (best value found - f*) after 50 and after `--trials` (200)
   trials, seeds 0..N-1 (`--seeds`, 20), on five minimized objectives:
   Branin, Hartmann-6, Styblinski-Tang 5-d, Rosenbrock 10-d on [-5, 10]^10,
   and a mixed categorical/conditional space (see `mixed`). Every side runs
   the same define-by-run objective through ask → suggest_* → tell; the
   table shows the median over seeds and the ratio labbook ÷ Optuna.
2. Suggest latency at 1,000 completed trials: 1,000 trials of a 5-float
   space are added to a TPE study (Optuna: `create_trial` + `add_trials`;
   labbook: `study.add_trial(params, value)`), then `ask()` + 5
   `suggest_float` calls are timed for trials 1000..1020 (each told, untimed).
3. End to end: `--e2e-trials` (10,000) trials of `x**2` (one float) through
   ask → suggest → tell with the RANDOM sampler on both sides, so what is
   measured is the bookkeeping and the storage, not the sampler: Optuna on
   in-memory storage, SQLite (`sqlite:///…`) and a journal file
   (`JournalStorage(JournalFileBackend(path))`), labbook on its embedded store.

    python3 -m venv .venv-w12 && .venv-w12/bin/pip install -r bench/search-requirements.txt
    .venv/bin/python bench/search_bench.py --optuna-python .venv-w12/bin/python \\
        --markdown bench/results/$(date -u +%F)-w12.md
    # one side only, JSON lines on stdout:
    .venv-w12/bin/python bench/search_bench.py --side optuna --seeds 3 --trials 60

The parent mode (no `--side`) runs each side as a subprocess, streams its JSON
lines to `--out` and prints the Markdown table (`--markdown FILE` writes it
too); `--report FILE` re-renders the table from a JSON lines file. Rows:

    {"workload": "W12", "figure": "regret", "tool": "optuna", "sampler": "tpe",
     "function": "branin", "seed": 0, "trials": 50, "best": 0.41, "regret": 0.012, ...}
    {"workload": "W12", "figure": "suggest_latency", "tool": "labbook", "unit": "ms",
     "median": 1.2, "min": 1.1, "max": 1.9, "n": 21, ...}
    {"workload": "W12", "figure": "e2e", "tool": "optuna", "storage": "sqlite",
     "unit": "s", "median": 41.0, "per_trial_us": 4100.0, ...}

plus one `"figure": "meta"` row per side (interpreter, versions) and
`"figure": "error"` rows (with the reason in `note`) for what failed. The
file imports nothing outside the standard library until a side needs it, so
the same file runs in every virtualenv.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parent.parent
THIS = Path(__file__).resolve()
WORKLOAD = "W12"
SIDES = ("labbook", "optuna", "random")
PARTS = ("regret", "latency", "e2e", "parallel")
PARALLEL_WORKERS = 16
PARALLEL_TRIALS = 25  # per worker
SIDE_NAMES = {"labbook": "labbook TPE", "optuna": "Optuna TPE", "random": "random"}
PROJECT = "w12"
CHECKPOINT = 50  # the early checkpoint; the late one is --trials
LATENCY_SEEDED = 1000  # completed trials before the timed asks
LATENCY_ASKS = 101  # trials 1000..1100
LATENCY_DIM = 5
E2E_TRIALS = 10_000
UNAVAILABLE = "labbook.study not available yet"
STORAGES = ("embedded", "inmemory", "sqlite", "journal")
STORAGE_NAMES = {
    "embedded": "labbook (embedded store)",
    "inmemory": "Optuna in-memory",
    "sqlite": "Optuna SQLite",
    "journal": "Optuna journal file",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Unavailable(RuntimeError):
    """The labbook API this benchmark is written against is not there (yet)."""


# --------------------------------------------------------------------------- the API both sides share


class Trial(Protocol):
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


class Study(Protocol):
    def ask(self, fixed_params: dict[str, float] | None = None) -> Any: ...

    def tell(self, trial: Any, value: float) -> Any: ...

    @property
    def best_value(self) -> float: ...

    @property
    def trials(self) -> list[Any]: ...


# --------------------------------------------------------------------------- objectives (all minimized)

BRANIN_B = 5.1 / (4 * math.pi**2)
BRANIN_C = 5 / math.pi
BRANIN_T = 1 / (8 * math.pi)

HARTMANN_ALPHA = (1.0, 1.2, 3.0, 3.2)
HARTMANN_A = (
    (10.0, 3.0, 17.0, 3.5, 1.7, 8.0),
    (0.05, 10.0, 17.0, 0.1, 8.0, 14.0),
    (3.0, 3.5, 1.7, 10.0, 17.0, 8.0),
    (17.0, 8.0, 0.05, 10.0, 0.1, 14.0),
)
HARTMANN_P = tuple(
    tuple(p * 1e-4 for p in row)
    for row in (
        (1312, 1696, 5569, 124, 8283, 5886),
        (2329, 4135, 8307, 3736, 1004, 9991),
        (2348, 1451, 3522, 2883, 3047, 6650),
        (4047, 8828, 8732, 5743, 1091, 381),
    )
)
HARTMANN_X_STAR = (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573)
# The root of 2x³ - 16x + 2.5 = 0 in [-5, 5] that minimizes x⁴ - 16x² + 5x.
STYBLINSKI_X_STAR = -2.903534027771177


def branin(x1: float, x2: float) -> float:
    """x1 ∈ [-5, 10], x2 ∈ [0, 15]; three global minima, at (-π, 12.275),
    (π, 2.275) and (3π, 2.475), f* = 5/(4π)."""
    return (
        (x2 - BRANIN_B * x1 * x1 + BRANIN_C * x1 - 6) ** 2 + 10 * (1 - BRANIN_T) * math.cos(x1) + 10
    )


def hartmann6(x: Sequence[float]) -> float:
    """x ∈ [0, 1]^6; f* ≈ -3.32237 at HARTMANN_X_STAR."""
    return -sum(
        alpha * math.exp(-sum(a * (xj - p) ** 2 for a, xj, p in zip(row_a, x, row_p)))
        for alpha, row_a, row_p in zip(HARTMANN_ALPHA, HARTMANN_A, HARTMANN_P)
    )


def styblinski_tang(x: Sequence[float]) -> float:
    """x ∈ [-5, 5]^d; f* = -39.16616570377141 d at x_i = STYBLINSKI_X_STAR."""
    return 0.5 * sum(xi**4 - 16 * xi * xi + 5 * xi for xi in x)


def rosenbrock(x: Sequence[float]) -> float:
    """f* = 0 at (1, …, 1); searched on [-5, 10]^d (SFU VLSE's domain, the
    usual one in BO papers, rather than De Jong's [-2.048, 2.048]^d)."""
    return sum(100 * (b - a * a) ** 2 + (a - 1) ** 2 for a, b in zip(x, x[1:]))


# The mixed space: a categorical `kind` decides which continuous parameters
# exist, then a log-scaled int and a 4-level categorical are shared by all:
#
#   kind = "quad": qx, qy ∈ [-5, 5]     g = ((qx - 1)² + (qy + 0.5)²) / 5    min 0    at (1, -0.5)
#   kind = "sin":  s ∈ [0, 2π]          g = 0.25 + (1 + sin s) / 2           min 0.25 at s = 3π/2
#   kind = "abs":  a1, a2, a3 ∈ [-2, 2] g = 0.1 + (|a1 - 0.3| + |a2 + 0.7| + |a3|) / 3
#                                                                            min 0.1  at (0.3, -0.7, 0)
#   width ∈ [1, 1024], int, log scale   h = (log2(width) - 5)² / 25          min 0 at width = 32
#                                                                            (1 at width 1 or 1024)
#   optimizer ∈ MIXED_PENALTY           c = MIXED_PENALTY[optimizer]         min 0 at "adam"
#
#   f = g + h + c, so f* = 0 exactly, at kind="quad", qx=1, qy=-0.5, width=32,
#   optimizer="adam". Every term is non-negative and the three are independent,
#   so that is the only minimum. The "sin" branch is the easy trap: a third of
#   random draws land in it and its floor is close to the global one.
MIXED_KINDS = ("quad", "sin", "abs")
MIXED_PENALTY = {"sgd": 0.3, "adam": 0.0, "rmsprop": 0.1, "adagrad": 0.6}


def mixed(kind: str, sub: dict[str, float], width: int, optimizer: str) -> float:
    if kind == "quad":
        g = ((sub["qx"] - 1) ** 2 + (sub["qy"] + 0.5) ** 2) / 5
    elif kind == "sin":
        g = 0.25 + (1 + math.sin(sub["s"])) / 2
    elif kind == "abs":
        g = 0.1 + (abs(sub["a1"] - 0.3) + abs(sub["a2"] + 0.7) + abs(sub["a3"])) / 3
    else:
        raise ValueError(f"unknown kind {kind!r}")
    h = (math.log2(width) - 5) ** 2 / 25
    return g + h + MIXED_PENALTY[optimizer]


def objective_branin(trial: Trial) -> float:
    return branin(trial.suggest_float("x1", -5.0, 10.0), trial.suggest_float("x2", 0.0, 15.0))


def objective_hartmann6(trial: Trial) -> float:
    return hartmann6([trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)])


def objective_styblinski_tang(trial: Trial) -> float:
    return styblinski_tang([trial.suggest_float(f"x{i}", -5.0, 5.0) for i in range(5)])


def objective_rosenbrock(trial: Trial) -> float:
    return rosenbrock([trial.suggest_float(f"x{i}", -5.0, 10.0) for i in range(10)])


def objective_mixed(trial: Trial) -> float:
    kind = trial.suggest_categorical("kind", list(MIXED_KINDS))
    if kind == "quad":
        sub = {
            "qx": trial.suggest_float("qx", -5.0, 5.0),
            "qy": trial.suggest_float("qy", -5.0, 5.0),
        }
    elif kind == "sin":
        sub = {"s": trial.suggest_float("s", 0.0, 2 * math.pi)}
    else:
        sub = {f"a{i}": trial.suggest_float(f"a{i}", -2.0, 2.0) for i in (1, 2, 3)}
    width = trial.suggest_int("width", 1, 1024, log=True)
    optimizer = trial.suggest_categorical("optimizer", list(MIXED_PENALTY))
    return mixed(kind, sub, width, optimizer)


@dataclass(frozen=True)
class Problem:
    key: str
    title: str
    domain: str
    f_star: float
    objective: Callable[[Trial], float]


PROBLEMS = (
    Problem(
        "branin",
        "Branin (2-d)",
        "x1 ∈ [-5, 10], x2 ∈ [0, 15]",
        0.39788735772973816,
        objective_branin,
    ),
    Problem("hartmann6", "Hartmann-6", "[0, 1]^6", -3.322368011391339, objective_hartmann6),
    Problem(
        "styblinski_tang5",
        "Styblinski–Tang (5-d)",
        "[-5, 5]^5",
        -195.83082851885706,
        objective_styblinski_tang,
    ),
    Problem("rosenbrock10", "Rosenbrock (10-d)", "[-5, 10]^10", 0.0, objective_rosenbrock),
    Problem(
        "mixed",
        "mixed categorical/conditional",
        "kind ∈ {quad, sin, abs} → 1–3 floats; width ∈ [1, 1024] int log; optimizer ∈ 4 levels",
        0.0,
        objective_mixed,
    ),
)
PROBLEM_KEYS = tuple(p.key for p in PROBLEMS)


def check_objectives() -> None:
    """The closed forms against known values (bench notes, section D)."""
    st = STYBLINSKI_X_STAR
    cases: list[tuple[str, float, float]] = [
        ("branin(0, 0)", branin(0, 0), 55.602112642270264),
        ("branin(10, 15)", branin(10, 15), 145.87219087939556),
        ("branin(-5, 0)", branin(-5, 0), 308.12909601160663),
        ("branin(-π, 12.275)", branin(-math.pi, 12.275), 0.39788735772973816),
        ("branin(π, 2.275)", branin(math.pi, 2.275), 0.39788735772973816),
        ("hartmann6(0.5^6)", hartmann6([0.5] * 6), -0.5053149917022333),
        ("hartmann6(0^6)", hartmann6([0.0] * 6), -0.00508911288366444),
        ("hartmann6(x*)", hartmann6(HARTMANN_X_STAR), -3.322368011391339),
        ("styblinski_tang(0^5)", styblinski_tang([0.0] * 5), 0.0),
        ("styblinski_tang(5^5)", styblinski_tang([5.0] * 5), 625.0),
        ("styblinski_tang(-5^5)", styblinski_tang([-5.0] * 5), 500.0),
        ("styblinski_tang(x*)", styblinski_tang([st] * 5), -195.83082851885706),
        ("rosenbrock(0^10)", rosenbrock([0.0] * 10), 9.0),
        ("rosenbrock(2^10)", rosenbrock([2.0] * 10), 3609.0),
        ("rosenbrock(-1^10)", rosenbrock([-1.0] * 10), 3636.0),
        ("rosenbrock(1^10)", rosenbrock([1.0] * 10), 0.0),
        ("mixed(optimum)", mixed("quad", {"qx": 1.0, "qy": -0.5}, 32, "adam"), 0.0),
        ("mixed(sin floor)", mixed("sin", {"s": 1.5 * math.pi}, 32, "adam"), 0.25),
        ("mixed(abs floor)", mixed("abs", {"a1": 0.3, "a2": -0.7, "a3": 0.0}, 32, "adam"), 0.1),
        ("mixed(width 1)", mixed("quad", {"qx": 1.0, "qy": -0.5}, 1, "adam"), 1.0),
        ("mixed(width 1024)", mixed("quad", {"qx": 1.0, "qy": -0.5}, 1024, "adagrad"), 1.6),
    ]
    bad = [
        f"{name} = {got!r}, expected {want!r}"
        for name, got, want in cases
        if not math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12)
    ]
    if bad:
        raise SystemExit("objective self-check failed:\n  " + "\n  ".join(bad))


# --------------------------------------------------------------------------- side: studies


def optuna_study(sampler: str, seed: int, storage: Any = None, name: str | None = None) -> Study:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no INFO line per told trial
    chosen = (
        optuna.samplers.TPESampler(seed=seed)
        if sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    return optuna.create_study(
        sampler=chosen, storage=storage, direction="minimize", study_name=name, load_if_exists=True
    )


def labbook_study(name: str, sampler: str, seed: int, store: Path) -> Study:
    try:
        import labbook
    except ImportError as e:
        raise Unavailable(f"{UNAVAILABLE}: labbook does not import ({e})") from e
    if not hasattr(labbook, "study"):
        raise Unavailable(
            f"{UNAVAILABLE}: {getattr(labbook, '__file__', 'labbook')} has no `study` "
            "(issue 13's API: labbook.study(name, direction=, sampler=, seed=, project=, store=))"
        )
    return labbook.study(
        name, direction="minimize", sampler=sampler, seed=seed, project=PROJECT, store=str(store)
    )


class Side:
    """One side: makes its studies, runs the parts, prints one JSON line per row."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.name: str = args.side
        self.sampler = "random" if self.name == "random" else "tpe"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"labbook-w12-{self.name}-", dir=args.workdir))
        self.failed = False

    def emit(self, row: dict[str, Any]) -> None:
        print(json.dumps({"workload": WORKLOAD, "tool": self.name, **row}), flush=True)

    def error(self, part: str, message: str) -> None:
        self.failed = True
        log(f"{self.name} {part}: FAILED: {message}")
        self.emit({"figure": "error", "part": part, "median": None, "note": message})

    def fresh_dir(self, label: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=self.workdir))

    def study(self, name: str, sampler: str, seed: int) -> tuple[Study, Path | None]:
        """A new study, and the folder to remove after it (labbook's store)."""
        if self.name == "labbook":
            store = self.fresh_dir(name)
            return labbook_study(name, sampler, seed, store), store
        return optuna_study(sampler, seed), None

    def meta(self) -> None:
        row: dict[str, Any] = {
            "figure": "meta",
            "python": sys.version.split()[0],
            "executable": sys.executable,
            "platform": platform.platform(),
            "cores": os.cpu_count(),
            "loadavg": list(os.getloadavg()),
            "sampler": self.sampler,
        }
        try:
            if self.name == "labbook":
                import labbook

                row["version"] = getattr(labbook, "__version__", None)
            else:
                import optuna

                row["version"] = optuna.__version__
        except ImportError as e:
            row["version"] = None
            row["note"] = f"import failed: {e}"
        self.emit(row)

    def main(self) -> int:
        self.meta()
        if self.name == "labbook":
            try:  # fail fast, once, with the clear message
                labbook_study("w12-probe", "tpe", 0, self.fresh_dir("probe"))
            except Unavailable as e:
                self.failed = True
                self.emit({"figure": "error", "part": "all", "median": None, "note": str(e)})
                print(f"search_bench.py --side labbook: {e}", file=sys.stderr)
                return 2
        parts = [p for p in self.args.parts if not (self.name == "random" and p != "regret")]
        for part in parts:
            started = time.perf_counter()
            try:
                getattr(self, part)()
            except Unavailable as e:
                self.error(part, str(e))
            except Exception as e:  # one part failing must not end the side
                self.error(part, f"{type(e).__name__}: {e}")
                traceback.print_exc()
            log(f"{self.name} {part}: {time.perf_counter() - started:.0f} s")
        shutil.rmtree(self.workdir, ignore_errors=True)
        return 1 if self.failed else 0

    # ------------------------------------------------------------------ part 1: regret

    def regret(self) -> None:
        checkpoints = sorted({min(CHECKPOINT, self.args.trials), self.args.trials})
        for problem in PROBLEMS:
            if problem.key not in self.args.functions:
                continue
            started = time.perf_counter()
            for seed in range(self.args.seeds):
                study, store = self.study(f"{problem.key}-s{seed}", self.sampler, seed)
                try:
                    self.search(study, problem, seed, checkpoints)
                finally:
                    if store is not None:
                        shutil.rmtree(store, ignore_errors=True)
            log(
                f"{self.name} {problem.key}: {self.args.seeds} seeds × {self.args.trials} trials "
                f"in {time.perf_counter() - started:.1f} s"
            )

    def search(self, study: Study, problem: Problem, seed: int, checkpoints: list[int]) -> None:
        best = math.inf
        started = time.perf_counter()
        for n in range(1, checkpoints[-1] + 1):
            trial = study.ask()
            value = problem.objective(trial)
            study.tell(trial, value)
            best = min(best, value)
            if n not in checkpoints:
                continue
            elapsed = time.perf_counter() - started
            reported = float(study.best_value)
            row: dict[str, Any] = {
                "figure": "regret",
                "sampler": self.sampler,
                "function": problem.key,
                "seed": seed,
                "trials": n,
                "best": reported,
                "regret": reported - problem.f_star,
                "f_star": problem.f_star,
                "elapsed_s": elapsed,
            }
            if reported != best:
                row["note"] = f"study.best_value {reported!r} ≠ the best value told {best!r}"
                log(f"{self.name} {problem.key} seed {seed}: {row['note']}")
            self.emit(row)

    # ------------------------------------------------------------------ part 2: suggest latency

    def latency(self) -> None:
        rng = random.Random(1213)
        names = [f"x{j}" for j in range(LATENCY_DIM)]
        seeded: list[tuple[dict[str, float], float]] = []
        for _ in range(LATENCY_SEEDED):
            params = {name: rng.uniform(-5.0, 5.0) for name in names}
            seeded.append((params, sum(v * v for v in params.values())))
        study, store = self.study("latency", "tpe", 0)
        try:
            started = time.perf_counter()
            if self.name == "labbook":
                # Each seeded trial asked with its parameters pinned, so the
                # sampler is not consulted, and told its value.
                for params, value in seeded:
                    trial = study.ask(params)
                    for name in names:
                        trial.suggest_float(name, -5.0, 5.0)
                    study.tell(trial, value)
                how = "ask(fixed_params) + suggest_float + tell × 1,000"
            else:
                import optuna
                from optuna.distributions import FloatDistribution

                dists = {name: FloatDistribution(-5.0, 5.0) for name in names}
                study.add_trials(  # type: ignore[attr-defined]
                    [
                        optuna.trial.create_trial(params=params, distributions=dists, value=value)
                        for params, value in seeded
                    ]
                )
                how = "create_trial + study.add_trials (1,000)"
            seed_s = time.perf_counter() - started
            samples: list[float] = []
            for _ in range(LATENCY_ASKS):
                t = time.perf_counter()
                trial = study.ask()
                xs = [trial.suggest_float(name, -5.0, 5.0) for name in names]
                samples.append((time.perf_counter() - t) * 1e3)
                study.tell(trial, sum(x * x for x in xs))
        finally:
            if store is not None:
                shutil.rmtree(store, ignore_errors=True)
        self.emit(
            {
                "figure": "suggest_latency",
                "sampler": "tpe",
                "unit": "ms",
                "median": statistics.median(samples),
                "min": min(samples),
                "max": max(samples),
                "n": len(samples),
                "samples": samples,
                "seed_s": seed_s,
                "note": (
                    f"ask() + {LATENCY_DIM} × suggest_float at {LATENCY_SEEDED:,} completed trials "
                    f"(trials {LATENCY_SEEDED}..{LATENCY_SEEDED + LATENCY_ASKS - 1}, each told "
                    f"untimed); seeded with {how} in {seed_s:.2f} s"
                ),
            }
        )
        log(f"{self.name} suggest latency: median {statistics.median(samples):.2f} ms")

    # ------------------------------------------------------------------ part 3: end to end

    def e2e(self) -> None:
        storages = ["embedded"] if self.name == "labbook" else ["inmemory", "sqlite", "journal"]
        for storage in storages:
            if storage not in self.args.storages:
                continue
            folder = self.fresh_dir(f"e2e-{storage}")
            started = time.perf_counter()
            study = self.e2e_study(storage, folder)
            create_s = time.perf_counter() - started
            n = self.args.e2e_trials
            t = time.perf_counter()
            for _ in range(n):
                trial = study.ask()
                x = trial.suggest_float("x", -10.0, 10.0)
                study.tell(trial, x * x)
            best = study.best_value
            total = time.perf_counter() - t
            stored = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            del study
            shutil.rmtree(folder, ignore_errors=True)
            self.emit(
                {
                    "figure": "e2e",
                    "sampler": "random",
                    "storage": storage,
                    "unit": "s",
                    "median": total,
                    "min": total,
                    "max": total,
                    "n": 1,
                    "trials": n,
                    "per_trial_us": total / n * 1e6,
                    "create_s": create_s,
                    "store_bytes": stored if storage != "inmemory" else None,
                    "best": best,
                    "note": (
                        f"{n:,} × (ask → suggest_float → tell) of x**2, random sampler (the storage "
                        f"is what is measured), {STORAGE_NAMES[storage]}; study creation "
                        f"({create_s * 1e3:.0f} ms) not included"
                    ),
                }
            )
            log(f"{self.name} e2e {storage}: {n:,} trials in {total:.2f} s")

    def parallel(self) -> None:
        """16 worker processes on one study, each asking, running and
        telling its share of a trivial objective: the errors, whether the
        trial count is exact, and the throughput."""
        import multiprocessing

        storages = ["embedded"] if self.name == "labbook" else ["sqlite", "journal"]
        for storage in storages:
            if storage not in self.args.storages:
                continue
            folder = self.fresh_dir(f"parallel-{storage}")
            self.e2e_study(storage, folder, "w12")  # created once, before the workers
            ctx = multiprocessing.get_context("spawn")
            started = time.perf_counter()
            with ctx.Pool(PARALLEL_WORKERS) as pool:
                results = pool.starmap(
                    _parallel_worker,
                    [(self.name, storage, str(folder), w) for w in range(PARALLEL_WORKERS)],
                )
            total = time.perf_counter() - started
            errors = [e for _, errs in results for e in errs]
            told = sum(n for n, _ in results)
            counted = len(self.e2e_study(storage, folder, "w12").trials)
            shutil.rmtree(folder, ignore_errors=True)
            expected = PARALLEL_WORKERS * PARALLEL_TRIALS
            self.emit(
                {
                    "figure": "parallel",
                    "storage": storage,
                    "unit": "trials/s",
                    "median": told / total,
                    "min": told / total,
                    "max": told / total,
                    "n": 1,
                    "workers": PARALLEL_WORKERS,
                    "trials": counted,
                    "expected": expected,
                    "errors": len(errors),
                    "error_sample": errors[:3],
                    "seconds": total,
                    "note": (
                        f"{PARALLEL_WORKERS} processes × {PARALLEL_TRIALS} trials on one study, "
                        f"{STORAGE_NAMES[storage]}: {len(errors)} errors, {counted} trials stored "
                        f"of {expected}"
                    ),
                }
            )
            log(
                f"{self.name} parallel {storage}: {told} trials in {total:.2f} s, {len(errors)} errors"
            )

    def e2e_study(self, storage: str, folder: Path, name: str | None = None) -> Study:
        if storage == "embedded":
            return labbook_study("e2e", "random", 0, folder)
        if storage == "inmemory":
            return optuna_study("random", 0)
        if storage == "sqlite":
            return optuna_study("random", 0, f"sqlite:///{folder / 'w12.db'}", name)
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        return optuna_study(
            "random", 0, JournalStorage(JournalFileBackend(str(folder / "w12.log"))), name
        )


def _parallel_worker(side: str, storage: str, folder: str, worker: int) -> tuple[int, list[str]]:
    """One of the parallel part's processes: its trials told, its errors."""
    errors: list[str] = []
    told = 0
    try:
        if side == "labbook":
            study: Any = labbook_study("e2e", "random", 0, Path(folder))
        else:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            if storage == "sqlite":
                backend: Any = f"sqlite:///{Path(folder) / 'w12.db'}"
            else:
                from optuna.storages import JournalStorage
                from optuna.storages.journal import JournalFileBackend

                backend = JournalStorage(JournalFileBackend(str(Path(folder) / "w12.log")))
            study = optuna.load_study(
                study_name="w12",
                storage=backend,
                sampler=optuna.samplers.RandomSampler(seed=worker),
            )
    except Exception as e:  # the worker could not even open the study
        return 0, [f"{type(e).__name__}: {e}"]
    for _ in range(PARALLEL_TRIALS):
        try:
            trial = study.ask()
            x = trial.suggest_float("x", -10.0, 10.0)
            study.tell(trial, x * x)
            told += 1
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}"[:200])
    return told, errors


# --------------------------------------------------------------------------- parent


def child_env() -> dict[str, str]:
    """No labbook store or setting from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABBOOK_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_side(side: str, python: str, args: argparse.Namespace, out: Any) -> list[dict[str, Any]]:
    cmd = [
        python,
        str(THIS),
        "--side",
        side,
        "--seeds",
        str(args.seeds),
        "--trials",
        str(args.trials),
        "--e2e-trials",
        str(args.e2e_trials),
        "--functions",
        ",".join(args.functions),
        "--parts",
        ",".join(args.parts),
        "--storages",
        ",".join(args.storages),
    ]
    if args.workdir:
        cmd += ["--workdir", args.workdir]
    log(f"{side}: {' '.join(cmd)}")
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=child_env())
    except OSError as e:
        proc = None
        rc = -1
        reason = f"cannot start {python}: {e}"
    if proc is not None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            rows.append(row)
            out.write(json.dumps(row) + "\n")
            out.flush()
        rc = proc.wait()
        reason = f"exited with {rc}"
    if rc != 0 and not any(r.get("figure") == "error" for r in rows):
        row = {"workload": WORKLOAD, "tool": side, "figure": "error", "part": "all"}
        row.update({"median": None, "note": f"{side} side {reason}"})
        rows.append(row)
        out.write(json.dumps(row) + "\n")
    log(f"{side}: done in {time.perf_counter() - started:.0f} s ({reason})")
    return rows


def parent(args: argparse.Namespace) -> None:
    check_objectives()
    pythons = {
        "labbook": args.labbook_python,
        "optuna": args.optuna_python,
        "random": args.optuna_python,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    rows: list[dict[str, Any]] = []
    with open(args.out, "w") as out:
        head = {
            "workload": WORKLOAD,
            "figure": "meta",
            "tool": "",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "node": platform.node(),
            "cores": os.cpu_count(),
            "loadavg_start": list(os.getloadavg()),
            "seeds": args.seeds,
            "trials": args.trials,
            "e2e_trials": args.e2e_trials,
        }
        out.write(json.dumps(head) + "\n")
        rows.append(head)
        for side in args.sides:
            rows += run_side(side, pythons[side], args, out)
        tail = {
            "workload": WORKLOAD,
            "figure": "elapsed",
            "tool": "",
            "elapsed_s": time.time() - started,
            "loadavg_end": list(os.getloadavg()),
        }
        out.write(json.dumps(tail) + "\n")
        rows.append(tail)
    log(f"done in {(time.time() - started) / 60:.1f} min → {args.out}")
    emit_report(rows, args.markdown)


def emit_report(rows: list[dict[str, Any]], markdown: str | None) -> None:
    text = report(rows)
    print(text)
    if markdown:
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown).write_text(text)
        log(f"table → {markdown}")


# --------------------------------------------------------------------------- the table


def fmt(value: float | None, unit: str = "") -> str:
    if value is None or math.isnan(value):
        return "–"
    if value == 0:
        return f"0{unit}"
    return f"{value:.3g}{unit}"


def per_trial(us: float) -> str:
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.3g} ms"


def ratio(num: float | None, den: float | None) -> str:
    if num is None or den is None:
        return "–"
    if den == 0:
        return "–" if num == 0 else "∞"
    r = num / den
    return f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"


def regrets(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str, int], list[float]]:
    """(tool, function, trials) → the regret of each seed."""
    groups: dict[tuple[str, str, int], list[float]] = {}
    for r in rows:
        if r.get("figure") == "regret":
            groups.setdefault((r["tool"], r["function"], r["trials"]), []).append(r["regret"])
    return groups


def ratio_interval(lab: list[float], opt: list[float], draws: int = 2000) -> str:
    """The 95% bootstrap interval of median(labbook) ÷ median(Optuna), each
    side's seeds resampled: an interval holding 1 is a difference the seeds
    cannot tell from chance."""
    rng = random.Random(12)
    got: list[float] = []
    for _ in range(draws):
        a = statistics.median(rng.choices(lab, k=len(lab)))
        b = statistics.median(rng.choices(opt, k=len(opt)))
        if b > 0:
            got.append(a / b)
    if len(got) < draws // 2:
        return "–"
    got.sort()
    lo, hi = got[int(0.025 * len(got))], got[int(0.975 * len(got)) - 1]
    return f"{lo:.2f}–{hi:.2f}"


def medians(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str, int], tuple[float, int]]:
    """(tool, function, trials) → (median regret over seeds, number of seeds)."""
    groups: dict[tuple[str, str, int], list[float]] = {}
    for r in rows:
        if r.get("figure") == "regret":
            groups.setdefault((r["tool"], r["function"], r["trials"]), []).append(r["regret"])
    return {k: (statistics.median(v), len(v)) for k, v in groups.items()}


def report(rows: list[dict[str, Any]]) -> str:
    meta = {r["tool"]: r for r in rows if r.get("figure") == "meta"}
    head = meta.get("", {})
    errors = [r for r in rows if r.get("figure") == "error"]
    failed = {r["tool"]: r["note"] for r in errors}
    regret = medians(rows)
    per_seed = regrets(rows)
    checkpoints = sorted({k[2] for k in regret})
    seeds = sorted({n for _, n in regret.values()})
    optuna_version = (meta.get("optuna") or meta.get("random") or {}).get("version")
    labbook_version = (meta.get("labbook") or {}).get("version")
    date = str(head.get("date", ""))[:10]

    def cell(tool: str, function: str, n: int) -> str:
        got = regret.get((tool, function, n))
        if got is None:
            return "n/a" if tool in failed else "–"
        return fmt(got[0])

    lines = [
        f"# {WORKLOAD}: hyperparameter search, labbook's TPE against Optuna's, {date}".rstrip(", "),
        "",
    ]
    if regret:
        lines.append(
            "`bench/search_bench.py`: median simple regret (best value − f*) over "
            f"{', '.join(f'{n} seeds (0..{n - 1})' for n in seeds) or '? seeds'}, after "
            f"{' and '.join(str(c) for c in checkpoints) or '?'} trials; all minimized; the same "
            "define-by-run objective through ask → suggest_* → tell on every side. Optuna "
            f"{optuna_version or '?'}: `TPESampler(seed=s)` with its defaults (multivariate, "
            "constant liar), in-memory storage; random = Optuna's `RandomSampler(seed=s)`. "
            f'labbook {labbook_version or "?"}: `labbook.study(..., sampler="tpe", seed=s)`. '
            "labbook ÷ Optuna below 1: labbook ends closer to the optimum; beside it, its 95% "
            "bootstrap interval over the seeds (one holding 1 is a difference the seeds cannot "
            "tell from chance)."
        )
        lines.append("")
        header = ["function", "domain", "f*"]
        for c in checkpoints:
            header += [
                f"labbook TPE @{c}",
                f"Optuna TPE @{c}",
                f"random @{c}",
                f"labbook ÷ Optuna @{c}",
            ]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for p in PROBLEMS:
            if not any(k[1] == p.key for k in regret):
                continue
            cells = [p.title, p.domain, repr(p.f_star)]
            for c in checkpoints:
                lab = regret.get(("labbook", p.key, c))
                opt = regret.get(("optuna", p.key, c))
                cells += [
                    cell("labbook", p.key, c),
                    cell("optuna", p.key, c),
                    cell("random", p.key, c),
                    ratio(lab[0] if lab else None, opt[0] if opt else None)
                    + (
                        f" ({ratio_interval(per_seed[('labbook', p.key, c)], per_seed[('optuna', p.key, c)])})"
                        if lab and opt
                        else ""
                    ),
                ]
            lines.append("| " + " | ".join(cells) + " |")

    speed = speed_table(rows, failed)
    if speed:
        lines += ["", *speed]
    parallel = [r for r in rows if r.get("figure") == "parallel"]
    if parallel:
        lines += [
            "",
            f"| {PARALLEL_WORKERS} worker processes on one study | storage | errors | trials stored "
            "(expected) | throughput |",
            "|---|---|---|---|---|",
        ]
        for r in parallel:
            lines.append(
                f"| {r['tool']} | {STORAGE_NAMES[r['storage']]} | {r['errors']} | "
                f"{r['trials']} ({r['expected']}) | {fmt(r['median'], ' trials/s')} |"
            )

    lines += ["", "Notes:"]
    for r in rows:
        if r.get("figure") == "regret" and r.get("note"):
            lines.append(f"- {r['tool']}, {r['function']}, seed {r['seed']}: {r['note']}")
    for tool, note in failed.items():
        lines.append(f"- {tool}: n/a: {note}")
    for tool in SIDES:
        m = meta.get(tool)
        if m:
            lines.append(
                f"- {SIDE_NAMES[tool]}: Python {m.get('python')} ({m.get('executable')}), "
                f"{'labbook' if tool == 'labbook' else 'optuna'} {m.get('version')}"
            )
    elapsed = next((r["elapsed_s"] for r in rows if r.get("figure") == "elapsed"), None)
    if head:
        lines.append(
            f"- {head.get('node')}, {head.get('cores')} cores, load average at the start "
            f"{', '.join(f'{x:.1f}' for x in head.get('loadavg_start', []))}"
            + (f"; the whole run took {elapsed / 60:.1f} min" if elapsed is not None else "")
        )
    return "\n".join(lines) + "\n"


def speed_table(rows: list[dict[str, Any]], failed: dict[str, str]) -> list[str]:
    latency = {r["tool"]: r for r in rows if r.get("figure") == "suggest_latency"}
    e2e = {r["storage"]: r for r in rows if r.get("figure") == "e2e"}
    wanted_latency = bool(latency) or any(
        r.get("part") in ("latency", "all") for r in failed_rows(rows)
    )
    if not latency and not e2e and not wanted_latency:
        return []
    na = "n/a" if "labbook" in failed else "–"
    lines = [
        "| figure | labbook | Optuna in-memory | Optuna SQLite | Optuna journal file | labbook ÷ Optuna |",
        "|---|---|---|---|---|---|",
    ]
    if latency or wanted_latency:
        lab = latency.get("labbook")
        opt = latency.get("optuna")

        def lat(r: dict[str, Any] | None, missing: str) -> str:
            if r is None:
                return missing
            return f"{fmt(r['median'], ' ms')} ({fmt(r['min'])}–{fmt(r['max'])})"

        lines.append(
            f"| suggest latency at {LATENCY_SEEDED:,} completed trials: ask() + "
            f"{LATENCY_DIM} × suggest_float, TPE, median of {LATENCY_ASKS} (min–max) | "
            f"{lat(lab, na)} | {lat(opt, '–')} | – | – | "
            f"{ratio(lab['median'] if lab else None, opt['median'] if opt else None)} |"
        )
    if e2e:
        n = next(iter(e2e.values()))["trials"]

        def tot(storage: str, missing: str = "–") -> str:
            r = e2e.get(storage)
            if r is None:
                return missing
            return f"{fmt(r['median'], ' s')} ({per_trial(r['per_trial_us'])}/trial)"

        lab_s = e2e.get("embedded", {}).get("median")
        ratios = ", ".join(
            f"{ratio(lab_s, e2e[s]['median'])} ({name})"
            for s, name in (("inmemory", "in-memory"), ("sqlite", "SQLite"), ("journal", "journal"))
            if s in e2e
        )
        lines.append(
            f"| {n:,} trials end to end (ask → suggest_float → tell of x**2), RANDOM sampler "
            "on both sides so the storage is what is measured | "
            f"{tot('embedded', na)} | {tot('inmemory')} | {tot('sqlite')} | {tot('journal')} | "
            f"{ratios if lab_s is not None else '–'} |"
        )
    return lines


def failed_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("figure") == "error"]


# --------------------------------------------------------------------------- arguments


def subset(choices: Sequence[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        picked = [t.strip() for t in text.split(",") if t.strip()]
        unknown = [t for t in picked if t not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(unknown)} (choose from {','.join(choices)})"
            )
        return [c for c in choices if c in picked]  # always the same order

    return parse


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--side",
        choices=SIDES,
        default=None,
        help="run one side in this interpreter and print its JSON lines (default: the parent)",
    )
    p.add_argument("--seeds", type=int, default=100, help="seeds 0..N-1 per function (default 100)")
    p.add_argument("--trials", type=int, default=200, help="trials per search (default 200)")
    p.add_argument(
        "--e2e-trials",
        type=int,
        default=E2E_TRIALS,
        help=f"trials of the end-to-end loop (default {E2E_TRIALS:,})",
    )
    p.add_argument(
        "--functions",
        type=subset(PROBLEM_KEYS),
        default=list(PROBLEM_KEYS),
        help=f"comma-separated subset of {','.join(PROBLEM_KEYS)}",
    )
    p.add_argument(
        "--parts",
        type=subset(PARTS),
        default=list(PARTS),
        help=f"comma-separated subset of {','.join(PARTS)}",
    )
    p.add_argument(
        "--storages",
        type=subset(STORAGES),
        default=list(STORAGES),
        help=f"end-to-end storages, a subset of {','.join(STORAGES)}",
    )
    p.add_argument(
        "--sides",
        type=subset(SIDES),
        default=list(SIDES),
        help=f"parent: the sides to run, a subset of {','.join(SIDES)}",
    )
    p.add_argument(
        "--optuna-python",
        default=sys.executable,
        help="parent: interpreter with optuna, for the optuna and random sides (default: this one)",
    )
    p.add_argument(
        "--labbook-python",
        default=str(REPO / ".venv" / "bin" / "python"),
        help="parent: interpreter with labbook (default: .venv)",
    )
    p.add_argument(
        "--out", default=str(REPO / "bench" / "out" / "w12.jsonl"), help="parent: JSON lines"
    )
    p.add_argument("--markdown", default=None, help="parent: also write the table to this file")
    p.add_argument(
        "--report", default=None, metavar="JSONL", help="only print the table of this file"
    )
    p.add_argument("--workdir", default=None, help="where the scratch stores go (default: $TMPDIR)")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.trials < 1 or args.e2e_trials < 1:
        p.error("--seeds, --trials and --e2e-trials must be at least 1")
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.report:
        rows = [
            json.loads(line) for line in Path(args.report).read_text().splitlines() if line.strip()
        ]
        emit_report(rows, args.markdown)
        return
    if args.side:
        check_objectives()
        sys.exit(Side(args).main())
    parent(args)


if __name__ == "__main__":
    main(sys.argv[1:])
