"""The data every regime is trained on: the synthetic world, real datasets, and their shape."""
