"""Benchmarks: ratios measured in one run, not tests."""
