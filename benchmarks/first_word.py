"""Time to the first line: how long each console script takes to say anything for help, a usage
error or a refused input, from the moment it is started (what a user waits for before the tool
answers). Each command runs ``--repeats`` times as a fresh process; the table gives the median and
the fastest, and the load average, since other processes slow a start-up.

    python -m vdeblur.benchmarks.first_word [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = (
    ("vdeblur", "--help"), ("vdeblur", "-h"), ("vdeblur", "nosuch.mp4", "out.mp4"),
    ("vdeblur-train", "-h"), ("vdeblur-export", "-h"), ("vdeblur-bench", "-h"),
)


def first_line_s(argv: list[str]) -> float:
    """Seconds from starting ``argv`` to its first byte on stdout or stderr (it then runs to its end)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
        sel.register(proc.stderr, selectors.EVENT_READ)  # type: ignore[arg-type]
        sel.select()
    seconds = time.perf_counter() - started
    proc.communicate()
    return seconds


def command(name: str) -> list[str]:
    """The installed console script (beside this interpreter, else on PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), name)
    found = beside if os.access(beside, os.X_OK) else shutil.which(name)
    if found is None:
        raise SystemExit(f"first_word: {name} is not installed (pip install -e .)")
    return [found]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1; got {args.repeats}")
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")
    print("| command | median s | fastest s |\n|---|---|---|")
    for name, *rest in COMMANDS:
        times = [first_line_s(command(name) + rest) for _ in range(args.repeats)]
        print(f"| `{' '.join([name, *rest])}` | {statistics.median(times):.2f} | {min(times):.2f} |")
    print(f"\nload average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
