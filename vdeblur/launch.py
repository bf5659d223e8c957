"""The console scripts' entry points (pyproject.toml). Each imports its command-line module and runs
its ``main``, which answers Ctrl-C with one line and exit status 130 (``vdeblur.console``). Importing
that module takes a moment (click, PyAV): a Ctrl-C that lands then gets the same answer here, not a
traceback. This module imports nothing of its own, so what is left before it answers is Python's
own start-up."""

from __future__ import annotations

import importlib
import sys

# console script -> (its module, what an interrupt leaves, as its main says it)
SCRIPTS = {
    "vdeblur": ("vdeblur.engine.cli", "no output was written"),
    "vdeblur-train": ("vdeblur.train.cli", "the run folder keeps its last checkpoint (--resume continues from it)"),
    "vdeblur-export": ("vdeblur.export.cli", "no export was written"),
    "vdeblur-bench": ("vdeblur.benchmarks.cli", "no results were written"),
}


def caused_by_interrupt(error: BaseException) -> bool:
    """True for a KeyboardInterrupt, or an error raised because of one: Python wraps an interrupt that
    lands in some places (a class's ``__set_name__`` while a module loads) in a RuntimeError."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _launch(prog: str) -> None:
    module, interrupted = SCRIPTS[prog]
    try:
        main = importlib.import_module(module).main
    except BaseException as e:
        if not caused_by_interrupt(e):
            raise
        sys.stderr.write(f"{prog}: interrupted; {interrupted}\n")
        sys.exit(130)
    main()


def vdeblur() -> None:
    _launch("vdeblur")


def vdeblur_train() -> None:
    _launch("vdeblur-train")


def vdeblur_export() -> None:
    _launch("vdeblur-export")


def vdeblur_bench() -> None:
    _launch("vdeblur-bench")
