"""make_app: the aiohttp application (static hosting + /config.json + /ws)."""

from pathlib import Path

from aiohttp import hdrs, web

from .introducer import DEFAULT_HEARTBEAT_S, DEFAULT_MAX_CLUSTERS, Introducer
from .static import StaticSite

# The repo root is the parent of this package (override with --root / root=).
DEFAULT_ROOT = Path(__file__).resolve().parent.parent

INTRODUCER = web.AppKey("introducer", Introducer)
SITE = web.AppKey("site", StaticSite)


def make_app(root: Path | str | None = None, *, site: StaticSite | None = None,
             secret: str | None = None, ice_servers=(), max_clusters: int = DEFAULT_MAX_CLUSTERS,
             heartbeat: float = DEFAULT_HEARTBEAT_S, **introducer_options) -> web.Application:
    """`site`: what to serve (a StaticSite or a subclass); default the one at `root`."""
    if site is None:
        site = StaticSite(Path(root) if root is not None else DEFAULT_ROOT)
    introducer = Introducer(secret=secret, ice_servers=ice_servers, max_clusters=max_clusters,
                            heartbeat=heartbeat, **introducer_options)

    async def config(request: web.Request) -> web.Response:
        # Pages read this before connecting: ICE servers and whether to sign joins.
        return web.json_response(
            {"ice_servers": introducer.ice_servers, "secret_required": introducer.secret is not None},
            headers={hdrs.CACHE_CONTROL: "no-cache"})

    async def close_sockets(app: web.Application) -> None:
        await introducer.shutdown()

    app = web.Application()
    app[INTRODUCER] = introducer
    app[SITE] = site
    app.router.add_get("/ws", introducer.handle_socket)
    app.router.add_get("/config.json", config)
    site.add_routes(app.router)
    app.router.add_get("/{tail:.*}", site.handle)
    app.on_shutdown.append(close_sockets)
    return app
