# The edge gateway: `deepsense serve` with the NumPy runtime (+ LiteRT where wheels exist)
# and Prometheus metrics. No TensorFlow. Build from the repository root:
#   docker build -t deepsense-gateway .
# Mounted at run time (never baked in): the bundle at /bundle, the broker's CA and the
# password as files (compose.yaml uses secrets under /run/secrets).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what `pip install .` needs: the packaging files and the three packages the edge runs.
COPY setup.cfg pyproject.toml README.md /src/
COPY deepsense /src/deepsense
COPY edge /src/edge
COPY gateway /src/gateway
RUN pip install "/src[edge,metrics]" \
    && rm -rf /src \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin gateway

USER 10001
WORKDIR /tmp
EXPOSE 9108

# Healthy while the gateway is connected to its broker (read from its own metrics).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as r; sys.exit(0 if b'deepsense_gateway_connected 1.0' in r.urlopen('http://127.0.0.1:9108/metrics', timeout=4).read() else 1)"]

ENTRYPOINT ["deepsense", "serve"]
CMD ["--bundle", "/bundle", "--broker", "mqtts://mosquitto:8883", \
     "--ca-file", "/run/secrets/ca.crt", "--username", "gw1", \
     "--password-file", "/run/secrets/gateway_password", "--metrics-port", "9108"]
