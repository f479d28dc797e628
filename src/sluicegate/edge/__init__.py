"""The edge layer: one request lifecycle that every face (publisher, first party, inference) stands on.

Modules: ``asgi`` (types, ``ResponseAborted``/``ClientGone``, ``send_simple``), ``client`` (``ClientWatch``:
the body as it arrives, the bounded whole-body read, the disconnect watch), ``deadline`` (one timer per
request), ``lifespan`` (the ASGI lifespan loop), ``headers`` (the one hop-by-hop rule).

Invariants the faces rely on:

* a client disconnect cancels the handler's task exactly once, and never after the response is complete;
* every wait on something outside the process is bounded by a ``Deadline`` (waits on the client's
  backpressure are not: those are the client's pace);
* any failure after the response head is committed raises ``ResponseAborted``: the connection is dropped,
  the client never sees a clean-looking truncated response.

Must not know: any face, the origin, the pipeline. Imports the standard library only (the layering test,
tests/unit/test_layers.py, allows ``config`` and nothing else).
"""
