"""fedscore experiments: the world, the regimes and the comparison harness."""
