"""fedscore protocol: secure aggregation, framework-free."""
