"""Consent-gated edge identity: consent decoding, the decision table, the ID cookie.

* ``consent`` — bounded decoders for TCF v2.2 (``euconsent-v2``), GPP (``__gpp``/``__gpp_sid``:
  header, EU TCF section 2, US Privacy section 6, the US national and state sections 7-27 incl. their
  GPC sub-segments) and US Privacy (``us_privacy``); malformed input is treated as absent (logged
  once per kind), never an exception to the caller;
* ``decision`` — jurisdiction from trusted geo headers and the decision table (reference §8.3);
* ``edge`` — the ID (HMAC of the normalised client IP + 6 random characters), the cookie, the
  per-request hook used by the publisher proxy and the first-party endpoints.

Must not know: bodies, upstream connections, HTML.
"""
