"""Team governance of the inference face: virtual keys, limits, budgets and the usage ledger (issue #18).

``governor`` is the one interface the inference intake calls (authenticate, admit, settle); ``keys`` the
key format and hash; ``store`` the narrow state interfaces; ``sqlite`` the embedded store; ``ledger`` the
bounded batch writer; ``manage`` + ``cli`` the ``sluicegate keys|usage`` commands; ``admin_api`` the same
over the admin listener. Must not know ASGI, SSE framing or providers. See docs/teams.md.
"""
