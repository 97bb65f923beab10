"""`python -m experiments` is the `fedscore` command."""

from experiments.cli import main

main()
