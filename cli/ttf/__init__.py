"""ttf: the http-tunnel forwarder agent."""

__version__ = "0.1.0"
