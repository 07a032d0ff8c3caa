"""Benchmarks, and the slow reference implementations and end-to-end checks they share
with the tests.

A package so that the tests can import the references from here (``from
benchmarks.reference_books import reference_books``): the dependency runs from the tests
to the benchmarks, never from the library or the benchmarks to the tests. pytest puts the
repository root on ``sys.path``, and each script puts it there too, so both
``python benchmarks/bench_reconstruction.py`` and ``python -m
benchmarks.bench_reconstruction`` work from a checkout.
"""
