# dialbase: `docker build -t dialbase .`; docs/deploy.md, "Containers".
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . \
    && useradd --system --uid 10001 --user-group --home-dir /data --create-home dialbase \
    && rm -rf /src

# Runs as an unprivileged user; its files (the SQLite database, uploaded imports) in /data.
USER dialbase
WORKDIR /data
VOLUME ["/data"]
ENV DIALBASE_DATABASE_URL=sqlite:////data/dialbase.db \
    DIALBASE_IMPORT_DIR=/data/imports \
    DIALBASE_LOG_FORMAT=json \
    DIALBASE_PORT=8000
EXPOSE 8000

# Ready: the database (and Redis, when configured) answer.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DIALBASE_PORT', '8000') + '/readyz', timeout=4)"]

ENTRYPOINT ["dialbase", "serve", "--host", "0.0.0.0"]
CMD ["--workers", "2"]
