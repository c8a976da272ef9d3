"""`smsbroker bench`: the whole pipeline on one machine against the simulated carrier."""

from bench.options import BenchOptions
from bench.report import BenchResult
from bench.run import run_bench

__all__ = ["BenchOptions", "BenchResult", "run_bench"]
