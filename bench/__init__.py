"""Benchmarks of the centre (`firetower bench ...`, see cli/bench.py): each module runs the real
processes against a real broker and database and reports figures; `bench/records/` keeps the
JSON records of runs (docs/performance.md). Nothing imports this package but the CLI and the
tests."""
