"""Makes `tests/fakes` importable as `fakes` from every test folder.

`tests` is not a package here (and a third-party distribution in the venv ships a top-level
`tests` package that would shadow `tests.fakes`), so this folder goes on sys.path instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent)
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)
