"""The publisher face: a publisher's origin served under the publisher's own domain.

``app`` (intake: request -> own checks -> origin request -> which relay), ``relay`` (the response, bytes out
as they arrive), ``headers`` / ``response_headers`` (header transforms), ``inbound*`` (public -> origin
request mapping), ``coding`` (the client's Accept-Encoding vs the origin's coding), ``processors`` (the
gate's kind -> a pipeline transformer), ``slicing`` (bounded CPU per loop turn). Stands on ``edge`` and
``upstream``; rewriting itself is ``pipeline``'s.
"""
