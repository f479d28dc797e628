"""First-party serving of third-party content: signed proxy / click / sign endpoints.

Modules, in data-path order:

* ``signing`` — the URL format: canonical target, HMAC-SHA256 token, expiry, key rotation;
* ``guard`` — which hosts may be fetched (``allowed_domains``) and which addresses may be
  connected to (the private-address SSRF guard), plus the resolver;
* ``fetch`` — one third-party fetch over ``upstream.http1`` to the checked address, redirects
  re-checked hop by hop;
* ``markup`` — streaming rewriters for proxied HTML/CSS and the publisher-page stage
  (``rewrite_domains``);
* ``endpoints`` — the ASGI handler for ``{path_prefix}/sign|proxy|click``.

Must not know: the publisher origin, consent decoding (it asks ``identity`` for an ID that is
allowed *now*), metrics internals.
"""
