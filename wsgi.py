"""Entry point for gunicorn (`wsgi:app`) and for `python wsgi.py`.

gevent's monkey-patching must happen before anything else imports socket, ssl or threading, and
psycopg2 must be told to yield to other greenlets while it waits on PostgreSQL.
"""

from gevent import monkey

monkey.patch_all()

from psycogreen.gevent import patch_psycopg  # noqa: E402

patch_psycopg()

from config import ConfigError  # noqa: E402
from fantasize import create_app  # noqa: E402

try:
    app = create_app()
except ConfigError as exc:  # an unknown environment or unsafe production settings: say so, without a traceback
    raise SystemExit(str(exc)) from None

if __name__ == "__main__":
    from gevent.pywsgi import WSGIServer

    host, port = app.config["HOST"], app.config["PORT"]
    app.logger.info("serving", extra={"url": f"http://{host}:{port}"})
    WSGIServer((host, port), app, log=None).serve_forever()
