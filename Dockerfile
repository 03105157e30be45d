FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY storage ./storage
COPY examples ./examples
RUN pip install . && useradd --system --uid 10001 --home /data rollout \
    && mkdir -p /data && chown rollout /data

USER rollout
VOLUME ["/data"]
ENV HOST=0.0.0.0 PORT=3000 \
    DATABASE_URL=sqlite+aiosqlite:////data/rollout-bot.db \
    ROLLOUT_CONFIG=/app/examples/minimal.yml
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz')"
CMD ["rollout-bot", "serve"]
