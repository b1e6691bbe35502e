"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app` (the Procfile's web process).

Scaling out (DESIGN.md): one gunicorn process per core, each with ONE gevent worker serving many concurrent
requests as greenlets, behind a proxy with sticky sessions, all sharing PostgreSQL and Redis. `workers` is left
to gunicorn, which reads WEB_CONCURRENCY itself (1 when unset). Keep it at 1: gunicorn spreads connections over
its workers without stickiness, which Socket.IO long-polling will need; note that Heroku sets WEB_CONCURRENCY
from the dyno size, so set it to 1 there. Everything else comes from config.py, the one place that reads the
environment.

What gunicorn serves is production unless FLASK_ENV or NODE_ENV names development or testing explicitly (the
Procfile names nothing), and production's settings are checked here, in the master, before any worker starts:
gunicorn refuses to serve without a real JWT_SECRET, SMTP mail and PUBLIC_BASE_URL, or with an unknown
environment name, and says why.
"""

# Module-level names are read as gunicorn settings (`config` is one), hence the underscores.
import config as _config

try:
    _config.default_environment("production")
    _settings = _config.config_for()
    if _settings.ENV_NAME == "production":
        _config.check_production(_config.settings_of(_settings))
except _config.ConfigError as _exc:
    raise SystemExit(f"gunicorn: {_exc}\n(gunicorn serves production unless FLASK_ENV or NODE_ENV names development "
                     "or testing)") from None

# HOST, then APP_PORT or PORT (Heroku sets PORT); production listens on 0.0.0.0 unless HOST says otherwise.
bind = f"{_settings.HOST}:{_settings.PORT}"

# gevent by default (GUNICORN_WORKER_CLASS), not eventlet: eventlet's maintainers discourage new use and gunicorn 26
# removed its eventlet worker. The gevent worker monkey-patches in each worker before it imports `wsgi`, and wsgi.py
# then applies psycogreen, so no post_fork hook is needed (post_fork runs before the worker patches, too early for
# psycogreen anyway). `gthread` (GUNICORN_THREADS threads per worker) needs no patching, and wsgi.py does none then.
# Do not turn on preload_app: wsgi.py would be imported in the master, before any gevent worker patches, and
# psycogreen would never be applied.
worker_class = _settings.GUNICORN_WORKER_CLASS
threads = _settings.GUNICORN_THREADS  # gthread only (gunicorn turns `sync` with threads > 1 into gthread)
worker_connections = _settings.GUNICORN_WORKER_CONNECTIONS  # gevent only

timeout = 30  # a worker silent this long is restarted
graceful_timeout = 30  # time given to in-flight requests on shutdown or reload
keepalive = _settings.GUNICORN_KEEPALIVE  # seconds an idle keep-alive connection stays open (behind a proxy)

# The app logs each request once (fantasize.platform.request_log: route, user, status, duration, client, request id,
# as JSON in production); gunicorn's access line would repeat it with less, so it is off.
accesslog = None
errorlog = "-"
loglevel = _settings.LOG_LEVEL.lower()

# gunicorn's control socket defaults to one path per user, which the next process on the host silently takes
# over; with one process per core that is wrong, and nothing here uses `gunicornc`.
control_socket_disable = True


# Prometheus with more than one worker (WEB_CONCURRENCY>1): each worker counts in memory-mapped files under a
# directory of this master's own, made empty before any worker forks and removed when the master exits; a worker
# that dies is marked so its live gauges stop counting (its counters stay: they were served). prometheus_client
# reads PROMETHEUS_MULTIPROC_DIR when a worker first imports it, so the master never imports it before this hook.
# One worker keeps its metrics in memory (fantasize/platform/monitoring/prometheus.py), so the variable is cleared.
_MULTIPROC_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def on_starting(server):
    import os
    import tempfile

    for name in _MULTIPROC_VARIABLES:
        os.environ.pop(name, None)
    if server.cfg.workers > 1:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="fantasize-prometheus-")


def child_exit(server, worker):
    import os

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    import os
    import shutil

    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
