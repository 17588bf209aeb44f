"""The agent's version (its own module: importable even when `ttf` resolves as a namespace package)."""

__version__ = "0.1.0"
