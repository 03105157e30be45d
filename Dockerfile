# Two stages: `build` makes the wheel from the sources; the image installs that wheel alone
# (its dependencies from the package index) into a venv, and copies nothing else. The
# default config is the package's own minimal example, written out by `rollout-bot init`.
# PYTHON_IMAGE: any image with Python 3.11+ and its venv module.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY commands ./commands
COPY storage ./storage
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --quiet --no-cache-dir --upgrade pip \
    && /opt/build/bin/pip wheel --quiet --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PATH=/opt/rollout-bot/bin:$PATH
COPY --from=build /wheels /tmp/wheels
RUN python3 -m venv /opt/rollout-bot \
    && /opt/rollout-bot/bin/pip install --quiet /tmp/wheels/rollout_bot-*.whl \
    && rm -rf /tmp/wheels \
    && mkdir -p /etc/rollout-bot && rollout-bot init /etc/rollout-bot/config.yml \
    && useradd --system --uid 10001 --home /data rollout \
    && mkdir -p /data && chown rollout /data

USER rollout
WORKDIR /data
VOLUME ["/data"]
ENV HOST=0.0.0.0 PORT=3000 \
    DATABASE_URL=sqlite+aiosqlite:////data/rollout-bot.db \
    ROLLOUT_CONFIG=/etc/rollout-bot/config.yml
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz')"
CMD ["rollout-bot", "serve"]
