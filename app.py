"""Papo's entry point.

`flask --app app run`        development server, threading mode, WebSockets through simple-websocket
`python app.py --port 5000`  production server in ASYNC_MODE (eventlet by default, or gevent)
"""
import os
import sys


def _monkey_patch():
    """Patch the standard library for ASYNC_MODE before anything else imports socket or threading."""
    mode = os.environ.get("ASYNC_MODE") or "eventlet"
    if mode == "eventlet":
        import warnings
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # a setting picks gevent
        import eventlet
        eventlet.monkey_patch()
    elif mode == "gevent":
        from gevent import monkey
        monkey.patch_all()
    elif mode != "threading":
        sys.exit(f"papo: ASYNC_MODE must be eventlet, gevent or threading, got {mode!r}")
    return mode


if __name__ == "__main__":
    ASYNC_MODE = _monkey_patch()
    from chat.server import main

    sys.exit(main(ASYNC_MODE))

from chat import create_app, internals  # noqa: E402

try:
    internals.check_versions()
except internals.VersionMismatch as error:
    sys.exit(f"papo: {error}")
app = create_app()
if os.environ.get("FLASK_RUN_FROM_CLI") == "true":
    from chat.server import stop_on_sigterm

    stop_on_sigterm(app)
