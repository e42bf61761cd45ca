"""`make bench`'s Python half: the SDK as a training script uses it.

Prints one JSON object per figure (median over repetitions, with min and
max) for report.py. Run from a scratch directory: it creates stores there.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def report(figure: str, unit: str, samples: list[float], note: str = "") -> None:
    print(
        json.dumps(
            {
                "figure": figure,
                "unit": unit,
                "median": statistics.median(samples),
                "min": min(samples),
                "max": max(samples),
                "note": note,
            }
        ),
        flush=True,
    )


def import_time() -> None:
    code = "import time; t = time.perf_counter(); import labbook; print(time.perf_counter() - t)"
    samples = []
    for _ in range(21):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        samples.append(float(out.stdout) * 1e3)
    report("import", "ms", samples, "`import labbook` in a fresh interpreter")


def main() -> None:
    os.environ.pop("LABBOOK_RUN_ID", None)
    import_time()
    import labbook

    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, ".labbook")

        samples = []
        for i in range(11):
            t = time.perf_counter()
            run = labbook.init(project="bench", dir=store, config={"lr": 0.1, "i": i})
            samples.append((time.perf_counter() - t) * 1e3)
            run.finish()
        report("init", "ms", samples, "labbook.init() with a config, store already open once")

        run = labbook.init(project="bench", dir=store, system_metrics=False)
        per_call = []
        for _ in range(300):
            v = 0.5
            t = time.perf_counter_ns()
            for _ in range(1000):
                run.log({"train/loss": v, "train/acc": v})
            per_call.append((time.perf_counter_ns() - t) / 1000 / 1000)
        report(
            "log_2_keys",
            "us/call",
            per_call,
            "run.log({...}) with a 2-key dict literal, dict build included",
        )

        keys = [f"layer{i}/grad_norm" for i in range(20)]
        values = dict.fromkeys(keys, 0.25)
        per_call = []
        for _ in range(100):
            t = time.perf_counter_ns()
            for _ in range(1000):
                run.log(values)
            per_call.append((time.perf_counter_ns() - t) / 1000 / 1000)
        report("log_20_keys", "us/call", per_call, "run.log(d) with a prebuilt 20-key dict")
        t = time.perf_counter()
        run.finish()
        report(
            "finish",
            "ms",
            [(time.perf_counter() - t) * 1e3],
            "finish() after 300k×2 + 100k×20 queued points",
        )

        import numpy as np

        n = 1_000_000
        rng = np.random.default_rng(0)
        values_f64 = 2 * np.exp(-np.arange(n) / 150_000) + 0.1 + 0.02 * rng.standard_normal(n)
        steps = np.arange(n, dtype=np.int64)
        rates = []
        for _ in range(7):
            run = labbook.init(project="bench", dir=store, system_metrics=False)
            t = time.perf_counter()
            run.log_series("loss", steps, values_f64)
            run.flush()
            rates.append(n / (time.perf_counter() - t))
            run.finish()
        report(
            "python_bulk_ingest",
            "points/s",
            rates,
            "log_series of 1M NumPy points until flushed to disk",
        )

        env = labbook.Api(dir=store).run(run.id)["environment"]
        report("capture", "ms", [env["capture_micros"] / 1000], "environment + git capture at init")


if __name__ == "__main__":
    main()
