"""`smsbroker bench`: the whole pipeline on one machine against the simulated carrier."""

from broker.bench.options import BenchOptions
from broker.bench.report import BenchResult
from broker.bench.run import run_bench

__all__ = ["BenchOptions", "BenchResult", "run_bench"]
