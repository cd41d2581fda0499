"""The benchmark of BENCH.md: `bin/bench` (see docs/bench.md)."""
