# Slim image, non-root, migrations then granian with workers. PostgreSQL comes from DATABASE_URL; without it
# (a trial), the embedded PostgreSQL runs inside the container with its data in $DATA_DIR/pg: mount a volume
# on /var/lib/jianfei to keep it (scripts/docker-entrypoint.sh). Production refuses to start without JWT_SECRET,
# PHONE_HASH_KEY and real WECHAT_APP_ID / WECHAT_APP_SECRET / WECHAT_API_BASE (the defaults are the fake server's).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PYTHONPATH=/app ENVIRONMENT=production SEED_DEMO=false \
    DATA_DIR=/var/lib/jianfei PORT=8000 WEB_CONCURRENCY=2
# The CJK font the door-plate labels embed (settings.label_font_path), so the PDFs print the same everywhere.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-wqy-microhei && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home /app jianfei && mkdir -p /var/lib/jianfei && chown jianfei /var/lib/jianfei
COPY --from=build /install /usr/local
WORKDIR /app
COPY migrations ./migrations
COPY alembic.ini ./
COPY app ./app
COPY scripts/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER jianfei
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,os;urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"8000\")}/readyz',timeout=2)" || exit 1
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
