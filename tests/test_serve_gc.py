"""A served process (API, worker, simulators) collects its young generation rarely."""

from __future__ import annotations

import subprocess
import sys

_PROGRAM = """
import asyncio, gc, os, signal
from cli.serve import run_until_signal

seen = []

async def start():
    async def stop():
        seen.append(gc.get_threshold())
    asyncio.get_running_loop().call_later(0.05, os.kill, os.getpid(), signal.SIGTERM)
    return stop

print(gc.get_threshold(), run_until_signal(start), seen[0])
"""


def test_the_young_threshold_is_raised_while_serving_and_the_older_ratios_kept() -> None:
    """At CPython's 700 the collector took ~9% of the API's and the worker's CPU in the bench."""
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM], capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()
    assert out.splitlines()[-1] == "(700, 10, 10) 0 (10000, 10, 10)"
