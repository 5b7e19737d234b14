# flowwire gateway image: `docker build -t flowwire .`, then
#   docker run -p 8080:8080 -e REDIS_URL=redis://redis:6379/0 -e JWT_SECRET=... flowwire
# Runtime dependencies come from the lock (locks/runtime.txt), the package itself without
# resolving anything else. tests/deploy/test_dockerfile.py runs this file's install and
# start commands in a fresh virtualenv (no container runtime on CI machines).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/flowwire \
    PATH=/opt/flowwire/bin:$PATH

# root-only system setup (skipped by the test)
RUN groupadd --system --gid 10001 flowwire \
 && useradd --system --uid 10001 --gid flowwire --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin flowwire

WORKDIR /src

# The locked dependencies first: this layer is rebuilt only when the lock changes.
COPY locks/runtime.txt locks/runtime.txt
RUN python -m venv /opt/flowwire \
 && pip install --require-virtualenv -r locks/runtime.txt

COPY pyproject.toml README.md ./
COPY schemas schemas
COPY publisher publisher
COPY gateway gateway
COPY client client
RUN pip install --require-virtualenv --no-deps . \
 && pip check \
 && flowwire serve --help > /dev/null

USER 10001:10001
WORKDIR /
EXPOSE 8080

# /healthz: the process is up (readiness, /readyz, is the orchestrator's business).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]

# Exec form: flowwire is PID 1 and handles SIGTERM itself (drain: 1012 to every client
# over DRAIN_WINDOW, then exit 0). Give it a stop timeout above DRAIN_WINDOW +
# SERVER_WRITE_TIMEOUT (docker stop -t 30; Kubernetes: terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
CMD ["flowwire", "serve", "--host", "0.0.0.0", "--port", "8080"]
