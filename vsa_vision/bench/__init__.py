"""Benchmarks: accuracy sweeps and problem generators (see ``vsa-vision bench``)."""

from .accuracy import evaluate, markdown_table, parse_method, plot_sweep, sweep_size, write_csv
from .problems import Problems, make_problems
from .stats import wilson_interval

__all__ = ["Problems", "make_problems", "evaluate", "sweep_size", "parse_method", "write_csv",
           "markdown_table", "plot_sweep", "wilson_interval"]
