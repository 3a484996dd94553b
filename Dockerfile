# certsync: one image for the daemon (`run`, the default) and the one-shot command.
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# --- build: a virtual environment from the hashed lock file, then certsync itself ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.lock ./
RUN python -m venv /opt/certsync \
    && /opt/certsync/bin/pip install --require-hashes -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
# The venv's own setuptools builds certsync: no unpinned download at build time.
RUN /opt/certsync/bin/pip install --no-deps --no-build-isolation .

# --- runtime: the venv, a non-root user, /data for the store --------------------
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 certsync \
    && useradd --system --uid 10001 --gid certsync --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin certsync \
    && mkdir -p /data /app/config \
    && chown certsync:certsync /data
COPY --from=build /opt/certsync /opt/certsync
# No mapping file is baked in: a container started without its own fails with a
# message naming CERTSYNC_MAPPINGS_FILE instead of syncing sample mappings.
ENV PATH=/opt/certsync/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CERTSYNC_DATABASE_URL=sqlite:////data/certsync.db \
    CERTSYNC_MAPPINGS_FILE=/app/config/mappings.toml \
    CERTSYNC_LOG_FORMAT=json
WORKDIR /app
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8080
# certsync itself asks its own /healthz: no curl or wget in the image.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["certsync", "healthcheck"]
ENTRYPOINT ["certsync"]
CMD ["run"]
