"""The modules compiled with mypyc: the one list that the build, the run time and the tests read.

``setup.py`` compiles exactly these (one mypyc group, one shared library ``sluicegate/_fast__mypyc*.so``);
``sluicegate.buildinfo`` decides at run time whether their compiled or their ``.py`` versions are
imported (``SLUICEGATE_PURE_PYTHON=1``, stale or missing build) and reports which. Adding a module is
one line here (it must pass mypyc: see docs/build.md), then a rebuild (``./run.sh setup`` or
``pip install .``). This file is executed by ``setup.py`` before the package exists: no imports.
"""

GROUP = "sluicegate._fast"
"""mypyc group name: the shared library is ``<GROUP>__mypyc`` (inside the package)."""

COMPILED_MODULES: tuple[str, ...] = (
    "sluicegate.pipeline.html.charrefs",
    "sluicegate.pipeline.html.treesim",
    "sluicegate.pipeline.html.lexer",
    "sluicegate.pipeline.html.needles",
    "sluicegate.pipeline.bytescan",
    "sluicegate.pipeline.html.scanner",
    "sluicegate.pipeline.html.attrs",
    "sluicegate.pipeline.html.output",
    "sluicegate.pipeline.html.units",
    "sluicegate.pipeline.html.registry",
    "sluicegate.pipeline.html.bodies",
    "sluicegate.pipeline.html.skipper",
    "sluicegate.pipeline.html.dispatch",
    "sluicegate.pipeline.html.urlvalues",
    "sluicegate.pipeline.html.rules",
    "sluicegate.pipeline.html.processor",
    "sluicegate.pipeline.html.textrefs",  # the HTML text filter (was pipeline.text for text nodes)
    # host matching + the CSS/JS/JSON text replacer: 1.20-1.31x on CSS/JS, 1.20x on text/x-component (docs/build.md)
    "sluicegate.pipeline.hosts",
    "sluicegate.pipeline.hosts_loop",  # the host pattern as a byte loop (compiled origin-tag path)
    "sluicegate.pipeline.text",
    # the per-request path of a relayed response (issue 19, docs/benchmarks-publisher.md "Serving cores"): the
    # response head rules, the edge lifecycle, the native core's framing, the access log. Only modules that reach
    # no third-party import beyond the build requirements (pydantic): server/h1 protocol/cycle and upstream/http1
    # reach httptools, server/observe prometheus_client and opentelemetry, publisher/headers the codecs' brotli
    "sluicegate.server.h1.framing",
    "sluicegate.edge.asgi",
    "sluicegate.edge.deadline",
    "sluicegate.edge.headers",
    "sluicegate.publisher.response_headers",
    "sluicegate.publisher.head_plan",
    "sluicegate.observability.access",
    # the rest of a relayed response's per-request path (pt2, 2026-12-07): the core's exchange and connection, the
    # origin client, the observer, the intake and the relay. They reach httptools and prometheus_client, which are
    # build requirements for that reason (pyproject.toml): mypyc type-checks what a compiled module imports
    "sluicegate.server.h1.cycle",
    "sluicegate.server.h1.protocol",
    "sluicegate.upstream.http1",
    "sluicegate.server.observe",
    "sluicegate.publisher.headers",
    "sluicegate.publisher.relay",
    "sluicegate.publisher.app",  # (its async generator, the client body, lives in publisher.inbound)
    # the inference face's synchronous per-request and per-event helpers (issue 19 row 7, docs/inference.md): the SSE
    # tap, the model splice, protocol detection, routing, provider headers, the origin data watch. Not its
    # coroutines (app, attempts, relay, pump): compiled, an exception they raised stayed in the task's exception
    # state after it was handled (sys.exc_info() still set), and a later stream on that task failed
    "sluicegate.inference.sse",
    "sluicegate.inference.splice",
    "sluicegate.inference.protocol",
    "sluicegate.inference.routing",
    "sluicegate.inference.providers",
    "sluicegate.upstream.ondata",
    "sluicegate.inference.flow",  # the byte relay's per-read step (synchronous; inference.pump keeps the coroutine)
    "sluicegate.server.app",  # the dispatch every request passes (pt3: its coroutine ran interpreted)
    "sluicegate.edge.client",  # the request's ClientWatch and Deadline (pt3: its body is an iterator class now)
)
