"""``sluicegate bench``: the measuring CLI (ttfb, endpoints, load, browser, ab, compare) and ``profile``.

Works against any HTTP URL; knows nothing about the proxy's internals. ``cli.register`` wires it into
the main ``sluicegate`` parser.
"""
