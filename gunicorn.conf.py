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
import re as _re

from gunicorn import glogging as _glogging

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

accesslog = "-"
errorlog = "-"
loglevel = _settings.LOG_LEVEL.lower()
# Client, request line, status, bytes, duration in ms, and the X-Request-ID the app answered with, so an
# access line can be matched with the app's JSON log lines (which carry the same requestId). One line per request:
# the app itself logs no request line.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s "%(a)s"'


class AccessFieldsLogger(_glogging.Logger):
    """gunicorn's logger, working out only the access-line fields the format names.

    gunicorn's own builds every field of its catalogue for each line: the time as text, a Basic-auth user decoded
    from the headers, a field per request header, per response header and per WSGI environ entry (some 60 in all,
    for the 7 this format shows): about 8% of a cached read's CPU. The line is the same; a format naming a field
    that is not in FIELDS gets gunicorn's own catalogue.
    """

    FIELDS = {
        "h": lambda resp, req, environ, took: environ.get("REMOTE_ADDR", "-"),
        "r": lambda resp, req, environ, took: (f"{environ['REQUEST_METHOD']} {environ['RAW_URI']} "
                                               f"{environ['SERVER_PROTOCOL']}"),
        "s": lambda resp, req, environ, took: (resp.status.split(None, 1)[0] if isinstance(resp.status, str)
                                               else resp.status),
        "m": lambda resp, req, environ, took: environ.get("REQUEST_METHOD"),
        "U": lambda resp, req, environ, took: environ.get("PATH_INFO"),
        "q": lambda resp, req, environ, took: environ.get("QUERY_STRING"),
        "H": lambda resp, req, environ, took: environ.get("SERVER_PROTOCOL"),
        "b": lambda resp, req, environ, took: getattr(resp, "sent", None) is not None and str(resp.sent) or "-",
        "B": lambda resp, req, environ, took: getattr(resp, "sent", None),
        "f": lambda resp, req, environ, took: environ.get("HTTP_REFERER", "-"),
        "a": lambda resp, req, environ, took: environ.get("HTTP_USER_AGENT", "-"),
        "T": lambda resp, req, environ, took: took.seconds,
        "D": lambda resp, req, environ, took: took.seconds * 1000000 + took.microseconds,
        "M": lambda resp, req, environ, took: took.seconds * 1000 + int(took.microseconds / 1000),
        "L": lambda resp, req, environ, took: f"{took.seconds}.{took.microseconds:06d}",
    }
    _HEADER_FIELD = _re.compile(r"^\{(.+)\}([ioe])$")

    def _plan(self) -> tuple[list, list] | None:
        """(simple fields, header fields) the format names, or None when gunicorn's catalogue is needed."""
        format_ = self.cfg.access_log_format
        if getattr(self, "_planned_for", None) != format_:
            simple, headers = [], []
            for name in dict.fromkeys(_re.findall(r"%\(([^)]*)\)", format_)):
                header = self._HEADER_FIELD.match(name)
                if header:
                    headers.append((name.lower(), header.group(1).lower(), header.group(2)))
                elif name in self.FIELDS:
                    simple.append((name, self.FIELDS[name]))
                else:
                    simple = None
                    break
            self._plan_made = None if simple is None else (simple, headers)
            self._planned_for = format_
        return self._plan_made

    # Health probes come every few seconds from each load balancer and orchestrator, for every instance: their
    # lines would bury the requests of people (the seed's nginx turns its access log off for /health likewise).
    # A probe that fails is still logged, and the app logs each dependency's change of state.
    PROBE_PATHS = ("/health", "/health/ready", "/health/live")

    def access(self, resp, req, environ, request_time):
        if environ.get("PATH_INFO") in self.PROBE_PATHS:
            status = self.FIELDS["s"](resp, req, environ, request_time)
            if str(status).isdigit() and int(status) < 500:
                return
        super().access(resp, req, environ, request_time)

    def atoms(self, resp, req, environ, request_time):
        plan = self._plan()
        if plan is None:
            return super().atoms(resp, req, environ, request_time)
        simple, headers = plan
        atoms = {name: field(resp, req, environ, request_time) for name, field in simple}
        for key, wanted, where in headers:
            if where == "e":
                pairs = environ.items()
            else:
                pairs = getattr(req, "headers", req) if where == "i" else resp.headers
                pairs = pairs.items() if hasattr(pairs, "items") else pairs
            for name, value in pairs:  # the last of repeated headers, as gunicorn's catalogue keeps
                if name.lower() == wanted:
                    atoms[key] = value
        return atoms


logger_class = AccessFieldsLogger

# gunicorn's control socket defaults to one path per user, which the next process on the host silently takes
# over; with one process per core that is wrong, and nothing here uses `gunicornc`.
control_socket_disable = True
