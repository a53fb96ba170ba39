# ticketbot container image.
#
# Stage 1 installs the locked dependencies (requirements.lock: pinned, hash-checked) into a
# virtualenv in a layer of their own, rebuilt only when the lock changes, then the project itself
# without dependencies; stage 2 copies that virtualenv into a clean slim image and runs it as an
# unprivileged user. `serve` applies the database migrations at start (serialised by a
# PostgreSQL advisory lock, so replicas may start together). The default DATABASE_URL is SQLite
# in /app/data (one replica, mount a volume there); set DATABASE_URL to PostgreSQL for
# production and for several replicas.
# Build: docker build -t ticketbot .   Run: see "Deployment" in README.md.

FROM python:3.11-slim AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.lock ./
RUN pip install --upgrade pip \
    && pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY core ./core
COPY bot ./bot
COPY migrations ./migrations
RUN pip install --no-deps . \
    && pip check

FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATABASE_URL=sqlite+aiosqlite:////app/data/ticketbot.db
RUN groupadd --system --gid 10001 ticketbot \
    && useradd --system --uid 10001 --gid ticketbot --home-dir /app --shell /usr/sbin/nologin ticketbot \
    && mkdir -p /app/data \
    && chown ticketbot:ticketbot /app/data
WORKDIR /app
COPY --from=builder /opt/venv /opt/venv
COPY scripts/docker-entrypoint.sh app_manifest.yml alembic.ini /app/
USER ticketbot:ticketbot
EXPOSE 3000
# No curl in slim images: the standard library asks /healthz.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '3000'), timeout=4)"]
ENTRYPOINT ["sh", "/app/docker-entrypoint.sh"]
CMD ["serve"]
