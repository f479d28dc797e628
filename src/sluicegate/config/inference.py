"""``[inference]``: the LLM gateway (providers, models, routing, timeouts, caps, breaker, client keys).

Owns the typed shape of the section and its cross-field checks (unique names, targets that name a
known provider, no placeholder secrets). Must not know about requests or sockets; credentials named by
``*_env`` are resolved by the gateway at start-up, not here. An empty ``[inference]`` means disabled.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sluicegate.config.types import Duration, FieldProblem
from sluicegate.edge.headers import is_hop_by_hop

_FROZEN = ConfigDict(extra="forbid", frozen=True)

ProviderKind = Literal["openai", "anthropic", "openai-compatible", "mock"]
AuthStyle = Literal["bearer", "x-api-key", "none"]
Strategy = Literal["ordered", "weighted", "least-inflight"]
ApiName = Literal["chat", "responses", "completions", "embeddings"]
_PARAM = re.compile(r"^[a-z_][a-z0-9_.]{0,63}$")

# Documentation placeholders refused as secrets (kept local: config must not import the loader).
_PLACEHOLDER = re.compile(
    r"^(?:<.*>|\$\{.*\}|x{3,}|changeme|change-me|your[-_ ].*|sk-\.\.\.|.*example.*|todo|replace[-_ ]?me|"
    r"sk-x+|\.\.\.|api[-_]?key)$",
    re.IGNORECASE,
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Set by the gateway itself on every provider request: never from a provider entry.
_OURS = frozenset({"host", "content-length", "authorization", "x-api-key"})


def _settable(name: str) -> bool:
    """A header a provider entry may set or forward: a token, neither hop-by-hop (edge's one rule) nor ours."""
    lower = name.lower()
    return bool(_HEADER.match(name)) and not is_hop_by_hop(lower) and lower not in _OURS

DEFAULT_BASE_URLS: dict[str, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com/v1",
}


def looks_like_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip()))


class ProviderTimeouts(BaseModel):
    model_config = _FROZEN

    connect: Duration = Field(default=10.0, gt=0, le=300)  # TCP (+TLS) connect, seconds; failure -> next target
    # Request sent -> first body byte (headers + first chunk). Expiry -> next target (nothing sent yet).
    first_byte: Duration = Field(default=60.0, gt=0, le=3600)
    idle: Duration = Field(default=120.0, gt=0, le=3600)  # silence between upstream body reads, seconds
    total: Duration = Field(default=0.0, ge=0, le=86400)  # whole exchange cap, seconds; 0 = no cap


class MockSettings(BaseModel):
    """Behaviour of the mock provider (``sluicegate.dev.mock_provider``, run beside the server; never by it)."""

    model_config = _FROZEN

    text: str = "Hello from the sluicegate mock provider. Streams are relayed byte for byte, café ✓."
    chunks: int = Field(default=12, ge=1, le=100_000)  # content deltas per streamed answer
    first_delay_ms: float = Field(default=10.0, ge=0, le=600_000)  # before the first body byte
    between_delay_ms: float = Field(default=20.0, ge=0, le=600_000)  # between streamed events
    # Default fault for every request (per-request: header ``x-mock-fault``), e.g. "status=429,retry_after=1",
    # "reset_after=3", "stall_after=2", "stall_headers", "gzip", "split", "big_event=4000000", "error_first".
    fault: str = ""

    @field_validator("fault")
    @classmethod
    def _fault(cls, value: str) -> str:
        check_fault_spec(value)
        return value


_FAULT_INT = frozenset({"status", "stall_after", "reset_after", "eof_after", "big_event", "piece_bytes", "chunks"})
_FAULT_FLOAT = frozenset({"first_delay_ms", "between_ms"})
_FAULT_FLAG = frozenset({"stall_headers", "gzip", "split", "error_first", "short_body", "crlf", "keepalive"})


def check_fault_spec(spec: str) -> None:
    """The mock's fault language (``status=429,retry_after=1``, ``reset_after=3``, ``gzip`` ...)."""
    for item in spec.split(","):
        key, eq, value = item.strip().partition("=")
        key = key.strip().replace("-", "_")
        if not key:
            continue
        value = value.strip()
        if key in _FAULT_INT:
            if not value.isdigit() or (key == "status" and not 100 <= int(value) <= 599):
                what = "an HTTP status" if key == "status" else "a whole number"
                raise ValueError(f"fault {key!r} needs {what}")
        elif key in _FAULT_FLOAT:
            try:
                if float(value) < 0:
                    raise ValueError
            except ValueError:
                raise ValueError(f"fault {key!r} needs a non-negative number of milliseconds") from None
        elif key == "retry_after":
            if not value:
                raise ValueError("fault 'retry_after' needs a value")
        elif key in _FAULT_FLAG:
            if eq:
                raise ValueError(f"fault {key!r} takes no value")
        else:
            known = sorted(_FAULT_INT | _FAULT_FLOAT | _FAULT_FLAG | {"retry_after"})
            raise ValueError(f"unknown fault {key!r} (known: {', '.join(known)})")


class ProviderSettings(BaseModel):
    model_config = _FROZEN

    name: str
    kind: ProviderKind = "openai-compatible"
    # Base URL including any version prefix; a request's leading /v1 is dropped when this ends in /v1.
    # Empty: the kind's default (openai, anthropic); "mock" needs one (the mock runs beside the server).
    base_url: str = ""
    api_key: str = Field(default="", repr=False)  # literal key (refused when it looks like a placeholder)
    api_key_env: str = ""  # name of the environment variable holding the key (preferred)
    auth: AuthStyle | None = None  # default: x-api-key for anthropic, none for mock, bearer otherwise
    headers: dict[str, str] = Field(default_factory=dict)  # sent upstream when the client did not send them
    forward_headers: list[str] = Field(default_factory=list)  # extra client headers let through
    timeouts: ProviderTimeouts = ProviderTimeouts()
    max_connections: int = Field(default=4096, ge=1, le=1_000_000)  # pooled upstream connections
    verify_tls: bool = True
    mock: MockSettings = MockSettings()
    # OpenAI APIs an openai-compatible server answers (default chat only; vLLM also has "responses").
    # kind = "openai" speaks chat + responses + completions + embeddings, "anthropic" Messages, "mock" all.
    apis: list[ApiName] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"not a provider name: {value!r}")
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError("must be an http(s) URL without query or fragment")
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _api_key(cls, value: str) -> str:
        if value and looks_like_placeholder(value):
            raise ValueError("holds an example placeholder, not a real secret")
        if any(c in value for c in "\r\n"):
            raise ValueError("must be a single line")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if value and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError("not an environment variable name")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for name, val in value.items():
            if not _settable(name):
                raise ValueError(f"header not allowed here: {name!r}")
            if any(c in val for c in "\r\n\0"):
                raise ValueError(f"header value of {name!r} must be a single line")
            out[name.lower()] = val
        return out

    @field_validator("forward_headers")
    @classmethod
    def _forward(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _settable(name):
                raise ValueError(f"header cannot be forwarded: {name!r}")
        return [n.lower() for n in value]

    @model_validator(mode="after")
    def _key_source(self) -> ProviderSettings:
        if self.api_key and self.api_key_env:
            raise FieldProblem(("api_key_env",), "set api_key or api_key_env, not both")
        if self.kind != "mock" and self.auth != "none" and not (self.api_key or self.api_key_env):
            raise FieldProblem(
                ("api_key_env",), "needs api_key_env (or api_key), or auth = \"none\" for keyless local servers"
            )
        if self.kind == "openai-compatible" and not self.base_url:
            raise FieldProblem(("base_url",), "openai-compatible providers need a base_url")
        if self.apis is not None:
            if self.kind != "openai-compatible":
                raise FieldProblem(("apis",), "apis is only for openai-compatible providers (others have fixed APIs)")
            if "chat" not in self.apis or len(set(self.apis)) != len(self.apis):
                raise FieldProblem(("apis",), "apis must list \"chat\" and each API once")
        return self

    @property
    def auth_style(self) -> AuthStyle:
        if self.auth is not None:
            return self.auth
        return {"anthropic": "x-api-key", "mock": "none"}.get(self.kind, "bearer")  # type: ignore[return-value]

    @property
    def effective_base_url(self) -> str:
        return self.base_url or DEFAULT_BASE_URLS.get(self.kind, "")


class TargetSettings(BaseModel):
    model_config = _FROZEN

    provider: str
    model: str  # the model name sent upstream (spliced into the body)
    weight: float = Field(default=1.0, gt=0, le=1_000_000)  # used by strategy = "weighted"

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        if not value or len(value) > 512 or any(ord(c) < 0x20 for c in value):
            raise ValueError("model must be 1..512 printable characters")
        return value


class ModelSettings(BaseModel):
    model_config = _FROZEN

    name: str  # what clients put in "model"
    targets: list[TargetSettings] = Field(min_length=1, max_length=64)  # candidates, in preference order
    strategy: Strategy = "ordered"
    # "auto": a target whose provider does not speak the client's protocol is reached by translation;
    # "never": such a target is skipped (none left -> 400 naming the model and why).
    translate: Literal["auto", "never"] = "auto"
    # max_tokens sent to Anthropic targets when an OpenAI client gave none (the Messages API requires it).
    default_max_tokens: int = Field(default=4096, ge=1, le=1_000_000)
    # Client parameters with no equivalent on the target protocol that may be dropped (reported in the
    # x-sluicegate-dropped response header) instead of refused with a 400, e.g. ["logprobs", "n"].
    drop_params: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"not a model name: {value!r}")
        return value

    @field_validator("drop_params")
    @classmethod
    def _drop(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _PARAM.match(name):
                raise ValueError(f"not a request parameter name: {name!r}")
        return value


class RetrySettings(BaseModel):
    model_config = _FROZEN

    max_attempts: int = Field(default=3, ge=1, le=20)  # upstream attempts per request, across all targets
    max_retry_after: Duration = Field(default=5.0, ge=0, le=120)  # longest Retry-After honoured, seconds
    backoff: Duration = Field(default=0.1, ge=0, le=30)  # wait before re-trying a target already tried, seconds


class BreakerSettings(BaseModel):
    model_config = _FROZEN

    failure_threshold: int = Field(default=3, ge=1, le=1000)  # consecutive failures that open a target
    cooldown: Duration = Field(default=5.0, ge=0, le=3600)  # seconds a target stays open before one trial


class InferenceSettings(BaseModel):
    model_config = _FROZEN

    listen_hosts: list[str] = Field(default_factory=list)  # Host values answered by the gateway
    path_prefix: str = ""  # e.g. "/llm": requests under it are inference requests (prefix stripped)
    providers: list[ProviderSettings] = Field(default_factory=list, max_length=256)
    models: list[ModelSettings] = Field(default_factory=list, max_length=4096)
    max_request_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, le=1024**3)  # over -> 413
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=16 * 1024**3)  # per upstream answer
    tap_max_event_bytes: int = Field(default=1024 * 1024, ge=1024, le=256 * 1024**2)  # usage tap event buffer
    # "first_byte": headers go out with the first body byte, so a 200 that never starts still falls back.
    # "headers": headers go out as soon as upstream headers arrive (no fallback after that).
    commit: Literal["first_byte", "headers"] = "first_byte"
    client_keys_env: str = ""  # env var with comma-separated keys clients must present; empty = open
    # Without client keys, real (non-mock) providers may only be served on a loopback address unless this is
    # set: an open gateway on a public address spends the provider credentials for anyone who finds it.
    allow_unauthenticated: bool = False
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()

    @field_validator("listen_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        for host in value:
            if not host or any(c in host for c in "/ \t@"):
                raise ValueError(f"not a host[:port]: {host!r}")
        return [h.lower() for h in value]

    @field_validator("path_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if value in ("", "/"):
            return ""
        if not value.startswith("/") or any(c in value for c in "?# \t%"):
            raise ValueError("must look like /llm")
        return value.rstrip("/")

    @field_validator("client_keys_env")
    @classmethod
    def _keys_env(cls, value: str) -> str:
        if value and not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", value):
            raise ValueError("not an environment variable name")
        return value

    @model_validator(mode="after")
    def _cross(self) -> InferenceSettings:
        names = [p.name for p in self.providers]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise FieldProblem(("providers", i, "name"), f"duplicate provider name {name!r}")
        models = [m.name for m in self.models]
        for i, name in enumerate(models):
            if name in models[:i]:
                raise FieldProblem(("models", i, "name"), f"duplicate model name {name!r}")
        known = set(names)
        for i, model in enumerate(self.models):
            for j, target in enumerate(model.targets):
                if target.provider not in known:
                    raise FieldProblem(("models", i, "targets", j, "provider"),
                                       f"unknown provider {target.provider!r}")
        if self.models and not (self.listen_hosts or self.path_prefix):
            raise FieldProblem(
                ("path_prefix",), "models are configured but neither listen_hosts nor path_prefix is set"
            )
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.listen_hosts or self.path_prefix) and bool(self.models)

    def provider(self, name: str) -> ProviderSettings:
        for p in self.providers:
            if p.name == name:
                return p
        raise KeyError(name)
