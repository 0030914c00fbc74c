# todo-chat: `todo-chat serve` on 0.0.0.0:8000; `todo-chat migrate` and `todo-chat worker`
# run from the same image. Settings are the environment variables of .env.example.
#
#   docker build -t todo-chat .
#   docker run --rm -p 8000:8000 -e DATABASE_URL=postgresql://... -e BETTER_AUTH_SECRET=... todo-chat
FROM debian:bookworm-slim

# Debian's Python 3.11; uv from PyPI (no other image registry is needed to build this).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir "uv>=0.13,<0.14" \
    && ln -s /opt/uv/bin/uv /usr/local/bin/uv

ENV UV_PYTHON_DOWNLOADS=never \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PYTHONUNBUFFERED=1

WORKDIR /app
# The dependencies first, in a layer of their own: a change to the code alone reuses it.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --locked --no-dev --no-install-project --python /usr/bin/python3 \
    && rm -rf /root/.cache
COPY server ./server
COPY mcp_tools ./mcp_tools
COPY agents ./agents
COPY alembic.ini ./
RUN uv sync --locked --no-dev --python /usr/bin/python3 && rm -rf /root/.cache

RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin todo \
    && mkdir -p /data && chown todo /data
USER 10001
ENV PATH=/app/.venv/bin:$PATH \
    ENVIRONMENT=production \
    DATA_DIR=/data \
    LOG_FORMAT=json \
    PUBLIC_URL=http://127.0.0.1:8000

EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["todo-chat", "serve", "--host", "0.0.0.0", "--port", "8000"]
