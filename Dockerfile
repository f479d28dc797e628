# sluicegate: the proxy as a container. Build: docker build -t sluicegate .
# Run:   docker run -p 8080:8080 -p 9901:9901 -v $PWD/sluicegate.toml:/etc/sluicegate/sluicegate.toml:ro sluicegate
# The config must listen on 0.0.0.0 inside the container ([server] host, [admin] listen = "0.0.0.0:9901"),
# and publish the admin port only to the orchestrator (probes, Prometheus), never to the internet.
FROM python:3.11-slim AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY src ./src
COPY scripts ./scripts
# `pip wheel .` builds the package (with its compiled fast paths when the build provides them).
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sluicegate \
 && mkdir -p /etc/sluicegate
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001
ENV PYTHONUNBUFFERED=1
EXPOSE 8080 9901
STOPSIGNAL SIGTERM
# Liveness on the admin listener (not the public port); readiness (/readyz) belongs to the load balancer.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9901/livez', timeout=2).status == 200 else 1)"
ENTRYPOINT ["sluicegate"]
CMD ["serve", "--config", "/etc/sluicegate/sluicegate.toml"]
