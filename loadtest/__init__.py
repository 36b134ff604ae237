"""Load tests and benchmarks: they print figures and assert only correctness, never a time."""
