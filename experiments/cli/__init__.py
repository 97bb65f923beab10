"""The `fedscore` command line and its tools: run, world, report, protocol, bench, deploy."""
