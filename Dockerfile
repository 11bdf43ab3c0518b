# rivermon's services (ingest, detect, web, sim, node add) in one image; the entry point is the
# `rivermon` command, so `docker run IMAGE ingest --broker ... --influx ...` runs the ingestor.
# docker-compose.yml builds it and runs one container per service (see docs/deploy.md).
FROM python:3.11-slim

# mosquitto ships mosquitto_passwd, which `rivermon node add` uses to issue credentials
# (the broker itself runs in its own container, never in this one).
RUN apt-get update \
    && apt-get install -y --no-install-recommends mosquitto \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# The package list and folders are spelled out in pyproject.toml ([tool.setuptools]).
COPY pyproject.toml README.md ./
COPY rivermon ./rivermon
COPY core ./core
COPY ingest ./ingest
COPY models ./models
COPY web ./web
COPY sim ./sim
COPY notify ./notify
COPY control ./control
RUN pip install . && rm -rf /src/build

# A dedicated unprivileged user; its state (spool, SQLite, secret key) lives in the volume.
RUN useradd --system --uid 10001 --home-dir /var/lib/rivermon --shell /usr/sbin/nologin rivermon \
    && install -d -o rivermon -g rivermon -m 0750 /var/lib/rivermon /etc/rivermon
ENV RIVERMON_VAR=/var/lib/rivermon
WORKDIR /var/lib/rivermon
USER rivermon
VOLUME ["/var/lib/rivermon"]

EXPOSE 8080
ENTRYPOINT ["rivermon"]
CMD ["--help"]
