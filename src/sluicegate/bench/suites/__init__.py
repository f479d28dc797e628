"""The repository's own benchmarks, one module per ``sluicegate bench <name>`` subcommand.

Each module has ``main(argv)`` (its own argparse parser, ``prog="sluicegate bench <name>"``), starts and
stops every server it uses, prints its tables and writes ``bench/results/<name>.json`` through
``sluicegate.bench.lab``. The registry of names is ``sluicegate.bench.cli.SUITES``. Test origins come from
``sluicegate.dev.origin``; the proxy is run as ``sluicegate serve`` or driven in process through its public
modules.
"""
