# syntax=docker/dockerfile:1
# One image for every QualityWatch service; the compose service picks one with its command:
#   docker build -t qualitywatch .
#   docker run --rm qualitywatch ingest|scorer|alerts|--help
# See docs/operations.md.

ARG PYTHON_VERSION=3.11

# ---- build: install the project and its dependencies into a virtualenv ----------------------
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A compiler: for the project's C files (shared/stats/_lattice.c, the exact CUSUM ARL, and
# shared/_rfc3339.c, event times), and in case a dependency has no wheel for this platform
# (this stage is discarded).
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/qualitywatch
ENV PATH=/opt/qualitywatch/bin:$PATH
WORKDIR /src
COPY . .
RUN pip install --upgrade pip setuptools wheel \
 && pip install ".[postgres]" \
 && qwatch --help >/dev/null \
 && cd / && python -c "import shared.stats._lattice, shared._rfc3339"

# ---- runtime: the virtualenv and an unprivileged user ---------------------------------------
FROM python:${PYTHON_VERSION}-slim
ENV PATH=/opt/qualitywatch/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    QW_INGEST_HOST=0.0.0.0 \
    QW_ALERTS_HOST=0.0.0.0 \
    QW_SCORER_DATA_DIR=/var/lib/qualitywatch/scorer \
    QW_DB_URL=sqlite+aiosqlite:////var/lib/qualitywatch/qualitywatch.db
RUN groupadd --system --gid 10001 qw \
 && useradd --system --uid 10001 --gid qw --home-dir /var/lib/qualitywatch --create-home \
      --shell /usr/sbin/nologin qw
COPY --from=build /opt/qualitywatch /opt/qualitywatch
USER 10001:10001
WORKDIR /var/lib/qualitywatch
EXPOSE 8001 8002
ENTRYPOINT ["qwatch"]
CMD ["--help"]
