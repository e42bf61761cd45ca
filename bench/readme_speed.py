"""The README's speed tables, generated from the committed results, so that the
figures the README quotes cannot disagree with what was measured.

- the peers headline: the "Headline" table of the newest
  ``bench/results/YYYY-MM-DD.md`` (``make bench-peers``);
- labbook's own targets: the "Figures" table of the newest
  ``bench/results/YYYY-MM-DD-targets.md`` (``make bench``);
- hyperparameter search beside Optuna (W12): the regret table of the newest
  ``bench/results/YYYY-MM-DD-w12.md`` and the speed tables of the newest
  ``bench/results/YYYY-MM-DD-w12-speed.md`` (``make bench-peers``);
- how costs grow with the store: the tables of the newest
  ``bench/results/YYYY-MM-DD-scale.md`` (``make bench-scale``).

``python bench/readme_speed.py --write`` rewrites the blocks between the
README's ``<!-- speed:NAME -->`` and ``<!-- /speed:NAME -->`` markers;
``--check`` (the test suite runs it) exits 1 if they differ from the files.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
README = REPO / "README.md"
BLOCK = re.compile(
    r"(<!-- speed:(?P<name>[a-z]+) -->\n)(?P<body>.*?)(<!-- /speed:(?P=name) -->)", re.S
)


def newest(pattern: str) -> Path:
    found = sorted(RESULTS.glob(pattern))
    if not found:
        raise SystemExit(f"no bench/results/{pattern}: run the benchmark first")
    return found[-1]


def table_after(path: Path, heading: str) -> list[str]:
    """The Markdown table that follows ``heading`` in ``path``, line by line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index(heading)
    except ValueError:
        raise SystemExit(f"{path} has no {heading!r}") from None
    rows = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            rows.append(line)
        elif rows:
            break
    if len(rows) < 3:
        raise SystemExit(f"{path}: no table under {heading!r}")
    return rows


def tables(path: Path) -> list[list[str]]:
    """Every Markdown table in ``path``, each line by line."""
    found: list[list[str]] = []
    current: list[str] = []
    for line in [*path.read_text(encoding="utf-8").splitlines(), ""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found


def blocks() -> dict[str, str]:
    peers = newest("????-??-??.md")
    targets = newest("????-??-??-targets.md")
    link = lambda p: f"[{p.relative_to(REPO)}]({p.relative_to(REPO)})"  # noqa: E731
    return {
        "peers": "\n".join(
            table_after(peers, "## Headline: labbook against the best peer on each figure")
        )
        + f"\n\nFrom {link(peers)}.\n",
        "targets": "\n".join(table_after(targets, "## Figures")) + f"\n\nFrom {link(targets)}.\n",
        "search": search_block(link),
        "scale": scale_block(link),
    }


def scale_block(link: Any) -> str:
    scale = newest("????-??-??-scale.md")
    found = tables(scale)
    if not found:
        raise SystemExit(f"{scale} has no tables")
    return "\n\n".join("\n".join(t) for t in found) + f"\n\nFrom {link(scale)}.\n"


def search_block(link: Any) -> str:
    regret = newest("????-??-??-w12.md")
    speed = newest("????-??-??-w12-speed.md")
    parts = [tables(regret)[0], *tables(speed)]
    if len(parts) < 2 or any(len(t) < 3 for t in parts):
        raise SystemExit(f"{regret} or {speed} lacks its tables")
    return (
        "\n\n".join("\n".join(t) for t in parts) + f"\n\nFrom {link(regret)} and {link(speed)}.\n"
    )


def render(readme: str) -> str:
    wanted = blocks()
    seen = set()

    def replace(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in wanted:
            raise SystemExit(f"README.md has an unknown speed block {name!r}")
        seen.add(name)
        return m.group(1) + wanted[name] + m.group(4)

    out = BLOCK.sub(replace, readme)
    missing = set(wanted) - seen
    if missing:
        raise SystemExit(f"README.md lacks the speed blocks {sorted(missing)}")
    return out


def main() -> int:
    readme = README.read_text(encoding="utf-8")
    fresh = render(readme)
    if "--write" in sys.argv:
        README.write_text(fresh, encoding="utf-8")
        return 0
    if fresh != readme:
        print(
            "README.md's speed tables differ from bench/results: run python bench/readme_speed.py --write"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
