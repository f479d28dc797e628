"""Debian nginx as the reference peer of the publisher benchmarks: as a static origin and as a reverse proxy.

One config builder (``conf``: the common preamble, temp paths under the run's temp dir, keep-alive settings)
and ``start`` (nginx in its own session through :class:`Procs`, ready when ``ready_path`` answers).
"""

from __future__ import annotations

import os
from pathlib import Path

from sluicegate.bench.lab.procs import Proc, Procs, wait_http

_CONF = """\
worker_processes {workers};
daemon off;
{user}
pid {tmp}/{name}.pid;
error_log {tmp}/{name}-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  {http}
  keepalive_requests 1000000; keepalive_timeout 65;
  client_body_temp_path {tmp}/t-{name}-body; proxy_temp_path {tmp}/t-{name}-proxy;
  fastcgi_temp_path {tmp}/t-{name}-fcgi; uwsgi_temp_path {tmp}/t-{name}-uwsgi; scgi_temp_path {tmp}/t-{name}-scgi;
  {upstream}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    {server}
  }}
}}
"""


def conf(tmp: Path, name: str, port: int, *, workers: int = 1, http: str = "tcp_nodelay on;", upstream: str = "",
         server: str = "") -> str:
    user = "user root;" if os.geteuid() == 0 else ""  # workers must read the temp dir
    return _CONF.format(tmp=tmp, name=name, port=port, workers=workers, user=user, http=http, upstream=upstream,
                        server=server)


def origin_conf(tmp: Path, port: int, *, types: str, locations: str = "") -> str:
    """A static origin serving ``<tmp>/www``."""
    return conf(tmp, "origin", port, http=f"{types}\n  sendfile on; tcp_nopush on; tcp_nodelay on;",
                server=f"root {tmp}/www;\n    {locations}")


def proxy_conf(tmp: Path, port: int, origin_port: int, workers: int = 1) -> str:
    """``proxy_pass`` with upstream keep-alive and default ``proxy_buffering on``."""
    return conf(tmp, f"proxy-{port}", port, workers=workers,
                upstream=f"upstream origin {{ server 127.0.0.1:{origin_port}; keepalive 128; }}",
                server='location / { proxy_pass http://origin; proxy_http_version 1.1; '
                       'proxy_set_header Connection ""; }')


def start(procs: Procs, nginx: str, tmp: Path, name: str, text: str, port: int, ready_path: str) -> Proc:
    path = tmp / f"{name}.conf"
    path.write_text(text)
    proc = procs.add(Proc(name, [nginx, "-e", str(tmp / f"{name}-error.log"), "-p", str(tmp), "-c", str(path)],
                          tmp / f"{name}.log"))
    wait_http(port, ready_path, proc)
    return proc
