"""``sluicegate check-site``: does a site come through sluicegate unbroken?

Loads every page of a site twice in headless Debian Chromium, once directly from the origin and once through
a sluicegate (one the command starts on a free local port, or one given by ``--proxy-url``), and compares
what the browser saw: console errors and hydration warnings, requests that still went to an origin authority
(leaks), failed requests, the DOM modulo the host mapping, TTFB and load time, and the answers to the page's
forms submitted on each side.

Layout (each module says what it must not know):

* ``sites``   - the checker's own, independent notion of "the same URL modulo hosts" (sans-IO).
* ``compare`` - turns two page observations into findings; decides "proxied is worse" (sans-IO).
* ``browser`` - a Chromium tab over the DevTools protocol (reuses ``sluicegate.bench.browser``).
* ``run``     - the crawl, the local sluicegate, the forms pass.
* ``report``  - text and JSON rendering.
* ``cli``     - argument parsing, exit codes.

The checker deliberately does NOT use ``sluicegate.pipeline.hosts``: judging the rewriter with its own mapping
would hide every spelling the mapping misses.
"""
