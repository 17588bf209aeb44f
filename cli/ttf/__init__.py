"""ttf: the http-tunnel forwarder agent, and its Python API.

    import ttf
    with ttf.expose(8000, endpoint="wss://...", token="...") as tunnel:
        print(tunnel.url)

The API (ttf.api: expose, Tunnel, the exceptions) is imported on first use, so `import ttf`
stays light (the `ttf` command, the pytest plugin). No submodule shares a name with it: the
agent's local call is ttf.forward, and nothing here is called `forward`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ttf._version import __version__

if TYPE_CHECKING:
    from ttf.api import ConfigError, Request, Tunnel, TunnelError, TunnelRefused, TunnelTimeout, expose

__all__ = ["ConfigError", "Request", "Tunnel", "TunnelError", "TunnelRefused", "TunnelTimeout", "__version__",
           "expose"]
_API = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from ttf import api

        return getattr(api, name)
    raise AttributeError(f"module 'ttf' has no attribute {name!r}")
