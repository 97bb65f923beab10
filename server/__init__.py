"""fedscore server: the federation coordinator."""
