# One Fantasize instance: one gunicorn process with one gevent worker (README "Deploy"), listening on 0.0.0.0:8000.
# compose.yaml runs two of these behind nginx, with PostgreSQL, Redis, Prometheus and a one-shot migration.
#
#   docker build -t fantasize .
#   podman build --format docker -t fantasize .        (podman's default OCI format drops HEALTHCHECK)
#   podman build --format docker --build-arg BASE_IMAGE=localhost/fantasize-python-base:bookworm -t fantasize .
#
# BASE_IMAGE names any Debian-like image with Python 3.11 and its venv module: the official slim image by
# default, or one made locally where no registry is reachable (deploy/containers-check builds one from a Debian
# root filesystem). The project runs on Python 3.11.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

# A venv, not the system's pip: Debian's Python refuses `pip install` outside one (PEP 668), and the official image
# takes it as well. No compiler is needed: every pinned requirement has a manylinux wheel for CPython 3.11.
ENV VIRTUAL_ENV=/opt/fantasize/venv \
    PATH=/opt/fantasize/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/fantasize/app

# Runtime requirements only (requirements-dev.txt is the test suite's), in their own layer: a code change does
# not reinstall them.
COPY requirements.txt ./
RUN python3 -m venv "$VIRTUAL_ENV" && pip install -r requirements.txt

COPY config.py wsgi.py gunicorn.conf.py Procfile ./
COPY migrations ./migrations
COPY fantasize ./fantasize

# The app runs as a user of its own that owns only what it writes: the instance folder (the factory creates it on
# start) and the upload store. Uploads live on a volume: with several instances they must all see the same files,
# so compose mounts one named volume into every instance (past one machine, a shared filesystem at this path).
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin fantasize \
    && mkdir -p instance /var/lib/fantasize/uploads \
    && chown fantasize:fantasize instance /var/lib/fantasize/uploads

# Production (gunicorn.conf.py makes it so; FLASK_ENV says it for `flask` commands such as the migration too),
# on all interfaces of the container, one gevent worker (Socket.IO long-polling needs every poll on the process
# that holds the socket), behind exactly one proxy (compose's nginx) whose X-Forwarded-For names the client.
ENV FLASK_ENV=production \
    HOST=0.0.0.0 \
    APP_PORT=8000 \
    WEB_CONCURRENCY=1 \
    PROXY_COUNT=1 \
    UPLOAD_FOLDER=/var/lib/fantasize/uploads

VOLUME /var/lib/fantasize/uploads
EXPOSE 8000

USER fantasize

# Slim images have no curl: Python asks /health/live (no I/O behind it; a dead database is /health/ready's business,
# and restarting an instance would not cure it).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", \
         "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/health/live' % os.environ.get('APP_PORT', '8000'), timeout=2)"]

CMD ["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]
