"""Benchmarks and the demo race; run with `make bench` and `make demo`."""
