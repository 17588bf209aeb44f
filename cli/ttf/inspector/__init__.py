"""The request inspector (like ngrok's :4040): the last N requests, edit and replay, a JSON API, one page.

history.py  what is kept (bounded), filters     server.py   the HTTP API and the page
edit.py     an edited request, checked          stream.py   server-sent events
views.py    bodies decoded/laid out for display diff.py     response diff
curl.py     copy as curl / HTTPie               har.py      HAR 1.2 export/import
security.py Host/Origin/token checks, CSP       client.py   `ttf replay ID [--edit]`
static/     the page: index.html, app.js, views.js, app.css (package data, no inline script)
"""

from ttf.inspector.history import BODY_CAP, DEFAULT_BUDGET, Body, Entry, History, capture
from ttf.inspector.server import Inspector, Local, Replayer, ReplayRefused

__all__ = ["BODY_CAP", "DEFAULT_BUDGET", "Body", "Entry", "History", "Inspector", "Local", "Replayer",
           "ReplayRefused", "capture"]
