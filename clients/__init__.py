"""fedscore clients: a pilot firm and its score model."""
