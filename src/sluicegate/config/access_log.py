"""The access log's vocabulary: the fields a line has and the ``$name`` template a config may give.

The config validates ``[server] access_log`` templates at load time (an error names file:line:key);
``observability.access`` renders lines with these fields. Imports the standard library only.
"""

from __future__ import annotations

import re

# Every field of a line, in JSON order; a template may use any of them as $name.
FIELDS = (
    "ts", "request_id", "face", "client_ip", "method", "host", "path", "status", "bytes_in", "bytes_out",
    "ttfb_ms", "duration_ms", "upstream_ms", "upstream_status", "route", "kind", "error", "model", "provider",
    "tokens_in", "tokens_out", "user_agent",
)
EXTRA_VARS = ("time_local",)  # template-only: nginx-style local time
_VAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def check_template(template: str) -> None:
    """Refuse a template naming an unknown field (called by config validation)."""
    if "\n" in template or "\r" in template:
        raise ValueError("an access_log template must be one line")
    names = _VAR.findall(template)
    if not names:
        raise ValueError('access_log is "json", "off", "auto", "combined" or a template using $fields')
    unknown = [n for n in names if n not in FIELDS and n not in EXTRA_VARS]
    if unknown:
        raise ValueError(f"unknown access_log field(s) {', '.join('$' + n for n in unknown)}; "
                         f"known: {', '.join(FIELDS + EXTRA_VARS)}")
