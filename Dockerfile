# sluicegate: the proxy as a container. Build: docker build -t sluicegate .
# Run:   docker run -p 8080:8080 -p 127.0.0.1:9901:9901 -v $PWD/sluicegate.toml:/etc/sluicegate/sluicegate.toml:ro sluicegate
# The config must listen on 0.0.0.0 inside the container ([server] host, [admin] listen = "0.0.0.0:9901": the
# container config in docs/deploy.md), and publish the admin port only to the orchestrator (probes, Prometheus),
# never to the internet. Checked without a Docker engine by tests/packaging/test_dockerfile.py (docs/deploy.md).
FROM python:3.11-slim AS build
WORKDIR /src
RUN apt-get update && apt-get install -y --no-install-recommends build-essential && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md requirements.lock ./
COPY src ./src
# The package with its compiled fast paths (setup.py runs mypyc; `require`: fail rather than ship pure Python),
# and wheels of its dependencies at the versions CI tested (requirements.lock as constraints).
RUN SLUICEGATE_BUILD_MYPYC=require pip wheel --no-cache-dir --constraint requirements.lock --wheel-dir /wheels . \
 && cp requirements.lock /wheels/

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sluicegate \
 && mkdir -p /etc/sluicegate
COPY --from=build /wheels /wheels
# Only the wheels built above (no index): exactly the locked versions, nothing fetched in this stage.
RUN pip install --no-cache-dir --no-index --find-links /wheels --constraint /wheels/requirements.lock sluicegate \
 && rm -rf /wheels
USER 10001
ENV PYTHONUNBUFFERED=1
EXPOSE 8080 9901
# SIGTERM: stop accepting, drain up to [server] shutdown_timeout, exit (docker stop's timeout must be longer).
STOPSIGNAL SIGTERM
# Liveness on the admin listener (not the public port); readiness (/readyz) belongs to the load balancer.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9901/livez', timeout=2).status == 200 else 1)"
ENTRYPOINT ["sluicegate"]
CMD ["serve", "--config", "/etc/sluicegate/sluicegate.toml"]
