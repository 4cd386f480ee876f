"""Test helpers, imported as ``helpers.<module>`` (pytest's ``pythonpath`` puts ``tests/`` on the path).

Benchmarks run from the repository root as ``python -m benchmarks.NAME`` import them as ``tests.helpers.<module>``.
"""
