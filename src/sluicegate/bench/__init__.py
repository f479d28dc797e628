"""``sluicegate bench``: the one benchmark tool.

Two kinds of subcommand, one parser (``cli.register`` wires it into the main ``sluicegate`` parser):

- measuring commands for any HTTP site (``ttfb``, ``endpoints``, ``load``, ``browser``, ``stream-ab``,
  ``compare``) and ``sluicegate profile``: modules at this level, knowing nothing about the proxy's internals;
- the repository's own benchmarks (``relay-ttfb``, ``memory``, ``throughput``, ``fairness``, ``html``, ...):
  ``suites/<name>.py``, each a ``main(argv)``, on the shared helpers of ``lab/`` (ports, processes, /proc
  sampling, raw first-body-byte client, statistics, tables, results JSON under ``bench/results/``).
"""
