"""What the supervisor needs to know of a config, as plain data: so that it never imports the config model.

The config is validated (and the app built once) in a short-lived child (``server.configcheck``), which
prints this view as JSON; the supervisor keeps the view, never a ``Settings``. pydantic and the validators
of every section (~12 MiB resident) stay out of the supervisor, which lives as long as the server.
Made from the typed model only (``configcheck.view_of``); the fields are the model's, named as there.
Must not import the config model (the point of it) nor anything of the workers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ProbeTarget:
    name: str  # "origin", "route:<name>", "provider:<name>"
    host: str
    port: int
    probed: bool = True  # False: an embedded provider (always up)


@dataclass(frozen=True)
class SupervisorView:
    host: str  # [server]
    port: int
    workers: int
    supervisor: bool  # false: one process (server.single)
    pid_file: str
    shutdown_timeout: float
    tls_cert: str  # the public listener's certificate file ("" = plain HTTP)
    admin_listen: str  # [admin] ("" = no admin listener)
    admin_host: str
    admin_port: int
    metrics: bool
    probe_interval: float
    probe_timeout: float
    publisher: bool  # faces enabled
    inference: bool
    backends: tuple[ProbeTarget, ...] = ()  # what the prober connects to
    page_routes: tuple[str, ...] = ()  # [[publisher.routes]] of kind "page": their backends gate readiness
    models: tuple[tuple[str, tuple[str, ...]], ...] = ()  # inference model -> its targets' providers
    teams_token_env: str = ""  # [inference.teams] admin_token_env (the admin API's "off" message names it)
    teams_token_file: str = ""  # [inference.teams] admin_token_file

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SupervisorView:
        data = json.loads(text)
        data["backends"] = tuple(ProbeTarget(**b) for b in data["backends"])
        data["page_routes"] = tuple(data["page_routes"])
        data["models"] = tuple((name, tuple(providers)) for name, providers in data["models"])
        return cls(**data)
