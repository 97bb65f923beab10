"""Leakage measurements on released scores: membership and attribute inference, and their plots.

Each module is pure functions over arrays plus frozen result types with `to_json()`; importing
this package imports nothing heavy, so `experiments.leakage.membership` can be used without
matplotlib or scikit-learn's model zoo being loaded.
"""
