# syntax=docker/dockerfile:1
# tradebot: one image for the replicas, the migrate step and the exchange simulator.

FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

FROM base AS deps
WORKDIR /app
# Dependencies get their own layer: it is rebuilt only when pyproject.toml changes.
COPY pyproject.toml README.md ./
# An empty package stands in for the source so that only the dependencies are resolved here; the
# real package replaces it in the runtime stage.
RUN mkdir tradebot && touch tradebot/__init__.py \
    && pip install --prefix=/install .

FROM base AS runtime
RUN groupadd --system tradebot && useradd --system --gid tradebot --home-dir /app --shell /usr/sbin/nologin tradebot
COPY --from=deps /install /usr/local
WORKDIR /app
COPY migrations ./migrations
COPY tradebot ./tradebot
COPY pyproject.toml README.md ./
RUN pip install --no-deps . && chown -R tradebot:tradebot /app
ENV TRADEBOT_ENV=production \
    TRADEBOT_LOG_JSON=1 \
    TRADEBOT_MIGRATIONS_DIR=/app/migrations \
    TRADEBOT_DATA_DIR=/app/var
USER tradebot
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["tradebot"]
CMD ["run", "--host", "0.0.0.0", "--port", "8080", "--no-migrate"]
