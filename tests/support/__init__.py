"""Helpers shared by the tests and the benchmarks: process control (``procs``: a
tracker and headless peers as child processes, ended by pid) and network namespaces
(``netns``: N hosts on a private bridge).

The dependency runs one way: ``bench/`` imports ``tests.support``, ``tests/`` never
imports ``bench`` (tests/test_import_layers.py checks it). The harness lives with the
tests because the tests are its first user and must run without the benchmarks; a
benchmark is just another client of it. Nothing here imports pytest, so a benchmark
does not need it.
"""
