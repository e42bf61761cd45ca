"""labbook: a local-first experiment tracker and lab notebook.

    import labbook
    run = labbook.init(project="mnist", config={"lr": 1e-3}, notes="Does dropout help?")
    for step in range(1000):
        run.log({"train/loss": loss})
    run.finish()

Everything here is a thin layer over the Rust core in ``labbook._native``;
this module only hooks runs into the interpreter's exit, SIGTERM and
uncaught-exception paths so that no run is left "running" by accident.
"""

from __future__ import annotations

import atexit
import os
import sys

from labbook._native import (
    Api,
    Artifact,
    ArtifactVersionView,
    ConfigView,
    LabbookError,
    RunCore,
    SummaryView,
    __version__,
)

# `import labbook` must stay in single-digit milliseconds: `typing` alone
# costs ~5 ms, so annotations are strings and their imports type-check only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import FrameType, TracebackType
    from typing import Any

ArtifactVersion = ArtifactVersionView
"""A logged artifact version (what ``log_artifact`` and ``use_artifact`` return)."""

__all__ = [
    "Api",
    "Artifact",
    "ArtifactVersion",
    "ConfigView",
    "FrozenTrial",
    "LabbookError",
    "Run",
    "Study",
    "SummaryView",
    "Trial",
    "TrialPruned",
    "__version__",
    "finish",
    "init",
    "log",
    "run",
    "study",
]

_STUDY_NAMES = frozenset({"study", "Study", "Trial", "TrialPruned", "FrozenTrial"})


def __getattr__(name: str) -> Any:
    # Studies are imported on first use, so `import labbook` stays fast.
    if name in _STUDY_NAMES:
        from labbook import _study

        return getattr(_study, name)
    raise AttributeError(f"module 'labbook' has no attribute {name!r}")


class Run(RunCore):
    """A run being logged. ``log``, ``log_series``, ``finish`` and the rest
    are the Rust core's methods; see ``labbook._native.RunCore``."""


run: Run | None = None
"""The run most recently started with :func:`init` in this process."""

_open_runs: list[Run] = []
_hooks_installed = False


def init(
    project: str | None = None,
    name: str | None = None,
    group: str | None = None,
    tags: Sequence[str] | None = None,
    notes: str | None = None,
    config: Mapping[str, Any] | Any | None = None,
    id: str | None = None,  # shadows the builtin: the public keyword, as in W&B
    resume: str | bool | None = None,
    dir: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    system_metrics: bool = True,
    system_interval: float = 5.0,
    flush_interval: float = 0.5,
    parent: str | RunCore | None = None,
) -> Run:
    """Starts (or resumes, or attaches to) a run and returns it.

    ``notes`` says what the run tests and why. ``config`` may be nested; it
    is stored flattened (``model.depth``). ``resume="allow"`` continues run
    ``id`` when it exists; ``"must"`` requires it. ``dir`` is the store (a
    ``.labbook`` directory or the folder that holds one); by default the
    store is found like git finds ``.git``.

    ``url`` (or ``LABBOOK_URL``) logs into a ``labbook serve`` instead, e.g.
    ``http://127.0.0.1:5000``. ``log()`` still never waits: the background
    writer sends batches, and repeats one whose answer it did not get
    under the same batch id, so an outage of the server delays points but
    neither loses nor doubles them.

    ``parent`` (a run, its id or an id prefix) nests this run under another,
    as MLflow's ``start_run(nested=True)`` does: the dashboard shows it in
    its parent's tree and ``--filter 'parent = "ID"'`` finds it.
    """
    global run
    new = Run(
        project=project,
        name=name,
        group=group,
        tags=tags,
        notes=notes,
        config=config,
        id=id,
        resume=resume,
        dir=os.fspath(dir) if dir is not None else None,
        url=url,
        system_metrics=system_metrics,
        system_interval=system_interval,
        flush_interval=flush_interval,
        parent=parent,
    )
    _install_hooks()
    _open_runs.append(new)
    run = new
    return new


def log(data: Mapping[str, float], step: int | None = None) -> None:
    """Logs to the current run (see :meth:`Run.log`)."""
    if run is None:
        raise LabbookError("no run: call labbook.init() first")
    run.log(data, step)  # type: ignore[arg-type]


def finish(status: str = "finished") -> None:
    """Finishes the current run."""
    global run
    if run is not None:
        run.finish(status)
        _open_runs[:] = [r for r in _open_runs if r is not run]
        run = None


def _finish_open_runs(status: str = "finished", error: str | None = None) -> None:
    while _open_runs:
        r = _open_runs.pop()
        if r.finished:
            continue
        try:
            if error is None:
                r.finish(status)
            else:
                r.fail(error, status)
        except Exception as e:  # exiting: report, never raise
            print(f"labbook: could not finish run {r.id}: {e}", file=sys.stderr)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(_finish_open_runs)

    previous_hook = sys.excepthook

    def excepthook(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        import traceback

        text = "".join(traceback.format_exception(exc_type, exc, tb))
        status = "killed" if issubclass(exc_type, KeyboardInterrupt) else "failed"
        _finish_open_runs(status, text)
        previous_hook(exc_type, exc, tb)

    sys.excepthook = excepthook

    import signal  # ~5 ms (it pulls in enum): paid at the first init(), not at import

    # Only take SIGTERM when nobody else has: a framework's own handler wins.
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:

            def on_sigterm(signum: int, frame: FrameType | None) -> None:
                _finish_open_runs("killed", "terminated by SIGTERM")
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)

            signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:
        pass  # not the main thread: signals cannot be handled here
