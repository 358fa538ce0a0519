"""authbridge benchmarks: ``python -m bench [--quick] [--only SUBSTRING]``."""
