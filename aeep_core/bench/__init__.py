"""Benchmarks and simulations: the oracle loop, settings and presets, runs, reports, plots, latency figures."""
