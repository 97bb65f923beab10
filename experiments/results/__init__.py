"""results.json as types.

The harness fills `Results` and writes it with `Results.to_json()`; `load_results` reads a
results.json back and refuses a missing, unknown or malformed key by its dotted path.
docs/RESULTS.md is generated from the models' docstrings (`experiments.results.docs`), so a
field cannot go undocumented and the docs cannot name a field that is gone.
"""

from experiments.results.load import ResultsError, load_results, parse_results
from experiments.results.schema import SCHEMA_VERSION, Results, Summary

__all__ = ["SCHEMA_VERSION", "Results", "ResultsError", "Summary", "load_results", "parse_results"]
