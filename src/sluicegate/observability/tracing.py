"""Optional OpenTelemetry tracing: a server span per request, a client span per upstream attempt, and W3C
``traceparent``/``tracestate`` sent to origins and providers.

Off unless ``OTEL_TRACES_EXPORTER`` names an exporter (``console``, ``otlp``) and ``OTEL_SDK_DISABLED`` is not
true; then the ``opentelemetry-sdk`` package must be installed (``pip install sluicegate[otel]``; ``otlp``
also needs ``opentelemetry-exporter-otlp-proto-http``). Everything else comes from the standard ``OTEL_*``
variables (service name, resource attributes, endpoint, headers, sampler) read by the SDK itself. When off,
``Tracer.from_env()`` is ``None`` and a request pays one ``is None`` check. Owns: span names, kinds and
attributes (no header values, no query strings, no bodies). Must not know how requests are served.
"""

from __future__ import annotations

import os
from typing import Any


class TracingUnavailable(ValueError):
    """Tracing was asked for but cannot run (one clear line at start-up)."""


class Tracer:
    def __init__(self, tracer: Any, provider: Any, propagator: Any, trace_api: Any) -> None:
        self._tracer = tracer
        self._provider = provider
        self._propagator = propagator
        self._trace = trace_api

    @classmethod
    def from_env(cls, environ: Any = None) -> Tracer | None:
        env = os.environ if environ is None else environ
        exporter_name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
        if not exporter_name or exporter_name == "none" or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
            return None
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
            from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        except ImportError:
            raise TracingUnavailable(
                "OTEL_TRACES_EXPORTER is set but opentelemetry-sdk is not installed (pip install 'sluicegate[otel]')"
            ) from None
        resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", "sluicegate")})
        provider = TracerProvider(resource=resource)
        if exporter_name == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif exporter_name == "otlp":
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                    OTLPSpanExporter,
                )
            except ImportError:
                raise TracingUnavailable(
                    "OTEL_TRACES_EXPORTER=otlp needs opentelemetry-exporter-otlp-proto-http"
                ) from None
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            raise TracingUnavailable(f"OTEL_TRACES_EXPORTER={exporter_name!r}: supported are console, otlp, none")
        return cls(provider.get_tracer("sluicegate"), provider, TraceContextTextMapPropagator(), trace)

    def server_span(self, method: str, path: str, face: str, carrier: dict[str, str]) -> Any:
        """A SERVER span, child of the client's ``traceparent`` when it sent a valid one."""
        parent = self._propagator.extract(carrier) if carrier else None
        return self._tracer.start_span(
            f"{method} {face}", context=parent, kind=self._trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path[:1024], "sluicegate.face": face},
        )

    def client_span(self, server: Any, name: str, attributes: dict[str, Any]) -> tuple[Any, list[tuple[str, str]]]:
        """A CLIENT span under ``server`` and the headers that carry it upstream."""
        ctx = self._trace.set_span_in_context(server)
        span = self._tracer.start_span(name, context=ctx, kind=self._trace.SpanKind.CLIENT, attributes=attributes)
        carrier: dict[str, str] = {}
        self._propagator.inject(carrier, context=self._trace.set_span_in_context(span))
        return span, list(carrier.items())

    def end_server(self, span: Any, status: int, error: str, attributes: dict[str, Any]) -> None:
        span.set_attribute("http.response.status_code", status)
        for key, value in attributes.items():
            if value not in (None, ""):
                span.set_attribute(key, value)
        if error or status >= 500:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error or str(status)))
        span.end()

    def end_client(self, span: Any, status: int, error: str = "") -> None:
        if status:
            span.set_attribute("http.response.status_code", status)
        if error or status >= 500:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error or str(status)))
        span.end()

    def shutdown(self) -> None:
        self._provider.shutdown()
