"""`python -m experiments` is the `fedscore` command."""

from experiments.cli.main import main

main()
