"""The key/usage admin API under ``/v1/`` on the admin listener (never the public port).

Routes (JSON in and out; ``Authorization: Bearer <admin token>`` on every call):
  GET /v1/keys, POST /v1/keys (201, the secret once in ``"key"``), GET|DELETE /v1/keys/{id-or-name},
  POST /v1/keys/{id-or-name}/disable|enable|rotate, GET /v1/usage?by=key|model|day&since=7d.
The token comes from the environment variable ``[inference.teams] admin_token_env`` or the file
``admin_token_file`` (never the TOML); with neither, every route answers 404 (API off). Store calls run
in a thread so the admin listener keeps answering health checks. Must not know the HTTP parsing.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:  # the supervisor serves this API and must stay lean: no config model, key store on first use
    from sluicegate.config.inference import InferenceSettings
    from sluicegate.teams.manage import KeyAdmin

log = logging.getLogger("sluicegate.teams.admin")
Reply = tuple[int, bytes, str]
_JSON = "application/json"
_CREATE_FIELDS = {"name", "models", "cidrs", "rpm", "tpm", "max_streams", "budget", "period", "model_limits"}


def _reply(status: int, value: Any) -> Reply:
    return status, json.dumps(value, indent=1).encode() + b"\n", _JSON


def load_admin_token(cfg: InferenceSettings, environ: Mapping[str, str] | None = None) -> bytes | None:
    env = os.environ if environ is None else environ
    t = cfg.teams
    token = env.get(t.admin_token_env, "") if t.admin_token_env else ""
    if not token and t.admin_token_file:
        try:
            token = Path(t.admin_token_file).read_text().strip()
        except OSError as exc:
            raise ValueError(f"inference.teams.admin_token_file: cannot read: {exc.strerror or exc}") from None
    if not token:
        return None
    if len(token) < 16:
        raise ValueError("the admin API token must hold at least 16 characters")
    return token.encode()


Handler = Callable[[str, str, Mapping[str, str], bytes], Awaitable[Reply]]


def api_off(admin_token_env: str) -> Handler:
    """The handler when no admin token is configured: every call is 404 saying how to turn the API on."""
    async def handle(method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        return _reply(404, {"error": "admin API off: set the environment variable "
                                     f"{admin_token_env} or [inference.teams] admin_token_file"})

    return handle


class TeamsAdminApi:
    def __init__(self, cfg: InferenceSettings, environ: Mapping[str, str] | None = None) -> None:
        self.cfg = cfg
        self.token = load_admin_token(cfg, environ)
        self.environ = environ

    async def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Reply:
        if self.token is None:
            return await api_off(self.cfg.teams.admin_token_env)(method, target, headers, body)
        auth = headers.get("authorization", "")
        presented = auth[7:].strip().encode() if auth[:7].lower() == "bearer " else b""
        if not hmac.compare_digest(presented, self.token):
            return _reply(401, {"error": "missing or wrong admin token"})
        return await asyncio.get_running_loop().run_in_executor(None, self._dispatch, method, target, body)

    def _dispatch(self, method: str, target: str, body: bytes) -> Reply:
        path, _, query = target.partition("?")
        parts = [p for p in path.split("/") if p][1:]  # after "v1"
        from sluicegate.teams.manage import KeyAdmin, ManageError

        try:
            admin = KeyAdmin(self.cfg, self.environ)
        except ValueError as exc:
            return _reply(500, {"error": str(exc)})
        try:
            if parts == ["usage"] and method == "GET":
                q = {k: v[-1] for k, v in parse_qs(query).items()}
                return _reply(200, admin.usage(q.get("by", "key"), q.get("since", "30d")))
            if parts == ["keys"]:
                if method == "GET":
                    return _reply(200, [r.public() for r in admin.list_keys()])
                if method == "POST":
                    return self._create(admin, body)
            elif len(parts) == 2 and parts[0] == "keys":
                if method == "GET":
                    return _reply(200, admin.get(parts[1]).public())
                if method == "DELETE":
                    admin.delete(parts[1])
                    return _reply(200, {"deleted": parts[1]})
            elif len(parts) == 3 and parts[0] == "keys" and method == "POST":
                if parts[2] in ("disable", "enable"):
                    return _reply(200, admin.set_enabled(parts[1], parts[2] == "enable").public())
                if parts[2] == "rotate":
                    secret, rec = admin.rotate(parts[1])
                    return _reply(200, {**rec.public(), "key": secret})
            else:
                return _reply(404, {"error": "unknown admin API path (try /v1/keys, /v1/usage)"})
            return _reply(405, {"error": f"{method} is not allowed on {path}"})
        except ManageError as exc:
            missing = str(exc).startswith("no key")
            return _reply(404 if missing else 400, {"error": str(exc)})
        finally:
            admin.close()

    def _create(self, admin: KeyAdmin, body: bytes) -> Reply:
        try:
            spec = json.loads(body or b"{}")
        except ValueError:
            return _reply(400, {"error": "body must be JSON"})
        if not isinstance(spec, dict) or set(spec) - _CREATE_FIELDS:
            return _reply(400, {"error": f"body must be an object with fields {sorted(_CREATE_FIELDS)}"})
        for name in ("rpm", "tpm", "max_streams"):
            if spec.get(name) is not None and (not isinstance(spec[name], int) or isinstance(spec[name], bool)):
                return _reply(400, {"error": f"{name} must be a whole number"})
        if spec.get("budget") is not None and not isinstance(spec["budget"], int | float):
            return _reply(400, {"error": "budget must be a number"})
        if not isinstance(spec.get("model_limits", {}), dict):
            return _reply(400, {"error": 'model_limits must be an object like {"fast": {"rpm": 10}}'})
        for name in ("models", "cidrs"):
            if not isinstance(spec.get(name, []), list) or not all(isinstance(v, str) for v in spec.get(name, [])):
                return _reply(400, {"error": f"{name} must be a list of strings"})
        secret, rec = admin.create(str(spec.get("name", "")), models=spec.get("models"), cidrs=spec.get("cidrs"),
                                   rpm=spec.get("rpm"), tpm=spec.get("tpm"), max_streams=spec.get("max_streams"),
                                   budget=spec.get("budget"), period=str(spec.get("period", "month")),
                                   model_limits=spec.get("model_limits") if isinstance(spec.get("model_limits"), dict)
                                   else None)
        log.info("admin API: key %s (%s) created", rec.id, rec.name)
        return _reply(201, {**rec.public(), "key": secret})
