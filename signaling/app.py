"""make_app: the aiohttp application (static hosting + /config.json + /ws),
with the Host check and the security headers on every response."""

import asyncio
import logging
from pathlib import Path

from aiohttp import hdrs, web, web_response
from aiohttp.http_exceptions import HttpProcessingError

from .addresses import CLIENT, client_address
from .headers import SECURITY_HEADERS, SERVER_NAME
from .introducer import Introducer
from .origins import Origins
from .ratelimit import LogThrottle
from .static import StaticSite

# The repo root is the parent of this package (override with --root / root=).
DEFAULT_ROOT = Path(__file__).resolve().parent.parent

INTRODUCER = web.AppKey("introducer", Introducer)
SITE = web.AppKey("site", StaticSite)

log = logging.getLogger("signaling")

# aiohttp answers malformed requests (oversized headers, bad request lines)
# itself, before any app code runs, with "Server: Python/x aiohttp/y". Its
# module default is the only hook for those responses.
web_response.SERVER_SOFTWARE = SERVER_NAME


class _OneLinePerBadRequest(logging.Filter):
    """aiohttp logs a traceback for every malformed request: bad input, not a
    bug. Say it in one throttled line instead."""

    def __init__(self, note: LogThrottle):
        super().__init__()
        self.note = note

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        self.note(logging.INFO, "bad_http", "refused a malformed request from %s: %s %.80s",
                  record.args[0] if record.args else "?", exc.code, exc.message)
        return False


def make_app(root: Path | str | None = None, *, site: StaticSite | None = None, server_names=(),
             allow_origins=(), trusted_proxies=(), **introducer_options) -> web.Application:
    """`site`: what to serve (a StaticSite or a subclass); default the one at
    `root`. `server_names`: host names served besides localhost/*.localhost/loopback
    (Host check, and the same-origin rule of /ws); `allow_origins`: other page
    origins that may use /ws; `trusted_proxies`: addresses of reverse proxies
    in front (their X-Forwarded-For names the client; they checked the Host).
    The rest goes to Introducer (access_secret=, ice_servers=, turn=,
    max_clusters=, heartbeat=, join_timeout=, ...)."""
    if site is None:
        site = StaticSite(Path(root) if root is not None else DEFAULT_ROOT)
    origins = Origins(server_names, allow_origins)
    trusted = frozenset(client_address(p, None, frozenset())[0] for p in trusted_proxies)
    introducer = Introducer(origins=origins, **introducer_options)
    note = LogThrottle(log)

    @web.middleware
    async def check_host(request: web.Request, handler):
        request[CLIENT], proxied = client_address(request.remote,
                                                  request.headers.get(hdrs.X_FORWARDED_FOR), trusted)
        # DNS rebinding: a page of another name that resolves to us. (A
        # proxy in front serves only its own names, over TLS.)
        if not proxied and not origins.host_ok(request.headers.get(hdrs.HOST)):
            note(logging.WARNING, "host", "refused a request for host %.100r (start the server "
                 "with --server-name if that is one of its names)", request.headers.get(hdrs.HOST))
            raise web.HTTPMisdirectedRequest(text="this server does not serve that host name\n")
        return await handler(request)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value

    async def config(request: web.Request) -> web.Response:
        # For tools and pages, before connecting. No credential: TURN ones come
        # over the socket, to joined sockets only.
        public = [s for s in introducer.ice_servers if "credential" not in s]
        return web.json_response(
            {"v": 2, "access": "secret" if introducer.access_secret else "open",
             "ice_servers": public,
             "turn": introducer.turn is not None or len(public) < len(introducer.ice_servers)},
            headers={hdrs.CACHE_CONTROL: "no-cache"})

    quiet = _OneLinePerBadRequest(note)

    async def on_startup(app: web.Application) -> None:
        logging.getLogger("aiohttp.server").addFilter(quiet)
        loop = asyncio.get_running_loop()
        previous = loop.get_exception_handler()

        def exception_handler(loop, context):
            # Out of descriptors, asyncio logs every failed accept (thousands
            # a second) and schedules a retry for each; retries that fire
            # after the listening socket closed fail too. One line per
            # interval is enough.
            if (context.get("message") == "socket.accept() out of system resource"
                    or "_start_serving" in repr(context.get("handle"))):
                note(logging.ERROR, "accept", "cannot accept connections: %s (descriptor limit?)",
                     context.get("exception"))
                return
            if previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        # Kept after cleanup: retries scheduled out of descriptors still
        # fire once the listening sockets are closed.
        loop.set_exception_handler(exception_handler)
        site.warm_up()  # MicroPython bundles compiled before the first window asks

    async def on_cleanup(app: web.Application) -> None:
        logging.getLogger("aiohttp.server").removeFilter(quiet)

    async def close_sockets(app: web.Application) -> None:
        await introducer.shutdown()

    app = web.Application(middlewares=[check_host])
    app[INTRODUCER] = introducer
    app[SITE] = site
    app.router.add_get("/ws", introducer.handle_socket)
    app.router.add_get("/config.json", config)
    site.add_routes(app.router)
    app.router.add_get("/{tail:.*}", site.handle)
    app.on_response_prepare.append(add_headers)
    app.on_startup.append(on_startup)
    app.on_shutdown.append(close_sockets)
    app.on_cleanup.append(on_cleanup)
    return app
