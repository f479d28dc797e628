"""Config text for ``sluicegate serve`` in tests (given to ``servers.ProxyProcess``, which fills ``{port}``)."""

from __future__ import annotations

__all__ = ["publisher_config"]


def publisher_config(origin: str, publisher: str = "", extra: str = "", server: str = "") -> str:
    """The publisher proxy on loopback in front of ``origin``, its public host its own address.

    ``publisher`` and ``server`` are more lines of the ``[publisher]`` and ``[server]`` tables (one ``key = value``
    a line, each ending in a newline); ``extra`` is appended as is (more tables: ``[timeouts]``, ``[http2]``, ...).
    ``{port}`` stays for ``ProxyProcess`` to fill."""
    return f"""
[server]
host = "127.0.0.1"
port = {{port}}
{server}
[publisher]
origin_url = "{origin}"
public_hosts = ["127.0.0.1:{{port}}"]
{publisher}{extra}"""
