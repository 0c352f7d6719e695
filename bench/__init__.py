"""Cove's benchmark suite: `make bench` (or `python -m bench`) writes bench/REPORT.md."""
