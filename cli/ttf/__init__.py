"""ttf: the http-tunnel forwarder agent."""

from ttf._version import __version__

__all__ = ["__version__"]
