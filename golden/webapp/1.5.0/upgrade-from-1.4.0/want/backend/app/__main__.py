"""Entry point: `python -m app` serves HTTP; `python -m app migrate` applies migrations and exits."""

from __future__ import annotations

import inspect
import logging
import os
import signal
import sys
import threading
import time

import uvicorn

from . import logs, migrate
from .api import create_app
from .config import ConfigError, Settings
from .store import Cache, Store

log = logging.getLogger("app")

# uvicorn 0.20+ bounds the graceful shutdown itself; older versions get a timer (Server below).
NATIVE_SHUTDOWN_TIMEOUT = "timeout_graceful_shutdown" in inspect.signature(uvicorn.Config).parameters


def main(argv: list[str]) -> int:
    if argv not in ([], ["migrate"]):
        print("usage: python -m app [migrate]", file=sys.stderr)
        return 2
    try:
        cfg = Settings.from_env()
    except ConfigError as exc:
        logs.setup()
        log.error("invalid configuration", extra={"fields": {"error": str(exc)}})
        return 1
    logs.setup(cfg.log_level)
    if argv == ["migrate"] or cfg.migrate_on_start:
        try:
            migrate.run(cfg)
        except Exception as exc:  # noqa: BLE001 - reported, then a non-zero exit
            log.error("migrate failed", extra={"fields": {"error": str(exc)}})
            return 1
        if argv == ["migrate"]:
            return 0
    return serve(cfg)


def serve(cfg: Settings) -> int:
    """Serve until SIGTERM or SIGINT, then finish in-flight requests and close the pools."""
    store = Store(cfg)
    cache = Cache(cfg)
    options = {
        "host": "0.0.0.0",
        "port": cfg.port,
        "log_config": None,  # app.logs already sends uvicorn's loggers to stdout as JSON
        "access_log": False,  # app.metrics logs every request
        "server_header": False,
    }
    if NATIVE_SHUTDOWN_TIMEOUT:
        options["timeout_graceful_shutdown"] = cfg.shutdown_timeout
    server = Server(uvicorn.Config(create_app(store, cache), **options), cfg.shutdown_timeout)
    # Until uvicorn installs its handlers, a signal stops the server before it serves. Newer
    # uvicorn also re-raises the signal it stopped on when it is done: this handler receives
    # it instead of the default one, so the pools are closed below and the exit status is 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, server.handle_exit)
    store.open()
    try:
        server.run()
    finally:
        store.close()
        cache.close()
    code = 0 if server.started else 1
    log.info("stopped")
    _exit_now_if_requests_hang(code)
    return code


def _exit_now_if_requests_hang(code: int) -> None:
    """Exit at once when request threads (stuck on a slow query, say) outlived the graceful
    shutdown: Python would otherwise wait for them and overrun the shutdown budget."""
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon]
    deadline = time.monotonic() + 1
    for t in others:
        t.join(max(0.0, deadline - time.monotonic()))
    hanging = sum(t.is_alive() for t in others)
    if hanging:
        log.warning("exiting with requests still running", extra={"fields": {"threads": hanging}})
        logging.shutdown()
        os._exit(code)


class Server(uvicorn.Server):
    """uvicorn's server with the graceful shutdown bounded on every uvicorn version."""

    def __init__(self, config: uvicorn.Config, shutdown_timeout: float):
        super().__init__(config)
        self.shutdown_timeout = shutdown_timeout

    def handle_exit(self, sig, frame) -> None:
        if not NATIVE_SHUTDOWN_TIMEOUT and not self.should_exit:
            timer = threading.Timer(self.shutdown_timeout, self._give_up)
            timer.daemon = True
            timer.start()
        super().handle_exit(sig, frame)

    def _give_up(self) -> None:
        log.warning("shutdown timeout reached, closing open connections")
        self.force_exit = True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
