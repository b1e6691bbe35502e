"""Entry point for gunicorn (`wsgi:app`) and for `python wsgi.py`.

Under gevent, monkey-patching must happen before anything else imports socket, ssl or threading, and psycopg2 must
be told to yield to other greenlets while it waits on PostgreSQL (psycogreen). Only under gevent, though:
- `python wsgi.py` serves with gevent's WSGIServer, so it patches here, first;
- gunicorn's gevent worker has patched already when it imports this module (it patches in the worker, before
  loading the app), so only psycogreen is left to do;
- any other gunicorn worker (`-k gthread`, `sync`) uses real threads: patching there would swap the threading and
  selectors its main loop already runs on, and the worker would never answer.
"""

import gc
import sys

if __name__ == "__main__":
    from gevent import monkey

    monkey.patch_all()


def _under_gevent() -> bool:
    # gevent.monkey is imported only by whoever patched (this file, or gunicorn's gevent worker); no gevent import here.
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


if _under_gevent():
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()

from config import ConfigError  # noqa: E402
from fantasize import create_app  # noqa: E402

try:
    app = create_app(migrations=False)  # serving only: `flask db` (the release phase) migrates
except ConfigError as exc:  # an unknown environment or unsafe production settings: say so, without a traceback
    raise SystemExit(str(exc)) from None

# What start-up built (the app, its mappers, schemas, routes and imported modules) lives as long as the process:
# out of the cyclic collector's reach, so its full collections, which stop every greenlet (a socket fan-out
# included), scan only what requests and sockets made since.
gc.freeze()

if __name__ == "__main__":
    from gevent.pywsgi import WSGIServer

    host, port = app.config["HOST"], app.config["PORT"]
    app.logger.info("serving", extra={"url": f"http://{host}:{port}"})
    WSGIServer((host, port), app, log=None).serve_forever()
