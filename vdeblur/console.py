"""How every console script meets the user: click's parsing, errors as one line, and Ctrl-C.

Ctrl-C may land anywhere: in an import, while a model loads or exports, in the middle of a frame or
of the encoder's flush. Wherever it lands the answer is the same one line and exit status 130
(the shell's code for SIGINT), never a traceback; the code that was writing removes its part files
as the interrupt unwinds through it (``engine.part_files``, ``export.artifact_cache``).

``VDEBLUR_INTERRUPT_AT=<stage>`` makes a process interrupt itself with SIGINT when it reaches that
stage (``reach``), exactly as a Ctrl-C from the terminal would at that moment; it lets the tests
press Ctrl-C at each stage deterministically, whatever the machine's speed (``STAGES`` lists them).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from .launch import caused_by_interrupt

INTERRUPT_AT = "VDEBLUR_INTERRUPT_AT"
STAGES = {
    "imports": "before torch and the model code are imported",
    "model-load": "before the model's weights are read",
    "export": "while the ONNX export a backend needs is being made",
    "adapt": "during --adapt, once the clip has been read and before the fine-tuning",
    "first-frame": "before the first frame is deblurred",
    "flush": "when the encoder's last frames are flushed",
}


def reach(stage: str) -> None:
    """Mark ``stage`` as reached; interrupts the process there when ``VDEBLUR_INTERRUPT_AT`` names it.

    The signal goes to the process, so Python raises KeyboardInterrupt in the main thread, as it does
    for a real Ctrl-C, even when a worker thread reaches the stage."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
    if os.environ.get(INTERRUPT_AT) == stage:
        os.kill(os.getpid(), signal.SIGINT)


class Interrupted(BaseException):
    """Ctrl-C on its way past click, which would answer a KeyboardInterrupt with a blank line and
    "Aborted!" (exit status 1)."""


class PassInterrupts:
    """Mixin for a console script's top command or group: Ctrl-C inside it reaches ``run_console``."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)  # type: ignore[misc]
        except KeyboardInterrupt:
            raise Interrupted from None


class ConsoleCommand(PassInterrupts, click.Command):
    pass


class ConsoleGroup(PassInterrupts, click.Group):
    pass


def run_console(command: click.Command, prog: str, interrupted: str, args: Sequence[str] | None = None,
                expected: tuple[type[Exception], ...] = ()) -> None:
    """Run ``command`` as the console script ``prog``; Ctrl-C anywhere prints ``prog: interrupted;
    <interrupted>`` and exits with 130. Click's own errors and exits behave as in its standalone mode;
    ``expected`` errors become ``prog: error: <message>`` and exit status 1 (the traceback with --debug)."""
    argv = list(args) if args is not None else sys.argv[1:]
    try:
        code = command.main(args=argv, prog_name=prog, standalone_mode=False)
    except (KeyboardInterrupt, Interrupted):
        _interrupted(prog, interrupted)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort as e:
        if caused_by_interrupt(e):  # Ctrl-C while click parsed the arguments
            _interrupted(prog, interrupted)
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except Exception as e:
        if caused_by_interrupt(e):
            _interrupted(prog, interrupted)
        if not isinstance(e, expected) or "--debug" in argv:
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)  # KeyError's str() adds quotes
        click.echo(f"{prog}: error: {message}", err=True)
        sys.exit(1)
    if isinstance(code, int) and code:  # click's ctx.exit(N); a plain return is success
        sys.exit(code)


def _interrupted(prog: str, what: str) -> NoReturn:
    end_progress_line = "\n" if sys.stderr.isatty() else ""  # a terminal may show a half-written progress line
    click.echo(f"{end_progress_line}{prog}: interrupted; {what}", err=True)
    sys.exit(130)
