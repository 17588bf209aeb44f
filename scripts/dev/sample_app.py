"""A small TodoMVC-style app to put behind the tunnel (`make dev` runs it on :3000).

    python -m scripts.dev.sample_app [--port 3000] [--host 127.0.0.1]

JSON API: GET/POST /api/todos, GET/PATCH/DELETE /api/todos/{id}, DELETE /api/todos (clear
completed). HTML: / (links to /about and /static/app.css with absolute paths, to see path-mode
rewriting at work), /about, /static/app.css. Data lives in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import sys
from dataclasses import asdict, dataclass, replace

from aiohttp import web

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body><nav><a href="/">Todos</a> · <a href="/about">About</a> · <a href="/api/todos">JSON</a></nav>
<h1>{title}</h1>{content}</body></html>
"""
CSS = "body { font-family: sans-serif; margin: 2rem; } .done { text-decoration: line-through; }\n"


@dataclass(frozen=True)
class Todo:
    id: int
    title: str
    completed: bool = False


class Todos:
    def __init__(self) -> None:
        self.items: dict[int, Todo] = {}
        self.ids = itertools.count(1)

    def add(self, title: str) -> Todo:
        todo = Todo(next(self.ids), title)
        self.items[todo.id] = todo
        return todo


def bad_request(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def json_body(request: web.Request) -> dict | None:
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def todo_id(request: web.Request) -> int | None:
    try:
        return int(request.match_info["id"])
    except ValueError:
        return None


def routes(store: Todos) -> web.RouteTableDef:
    table = web.RouteTableDef()

    @table.get("/api/todos")
    async def list_todos(request: web.Request) -> web.Response:
        return web.json_response([asdict(t) for t in store.items.values()])

    @table.post("/api/todos")
    async def create(request: web.Request) -> web.Response:
        body = await json_body(request)
        if body is None or not isinstance(body.get("title"), str) or not body["title"].strip():
            return bad_request('expected JSON {"title": "..."}')
        return web.json_response(asdict(store.add(body["title"].strip())), status=201)

    @table.delete("/api/todos")
    async def clear_completed(request: web.Request) -> web.Response:
        for key in [k for k, t in store.items.items() if t.completed]:
            del store.items[key]
        return web.Response(status=204)

    @table.get("/api/todos/{id}")
    async def read(request: web.Request) -> web.Response:
        todo = store.items.get(todo_id(request) or -1)
        if todo is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(asdict(todo))

    @table.patch("/api/todos/{id}")
    async def update(request: web.Request) -> web.Response:
        todo = store.items.get(todo_id(request) or -1)
        if todo is None:
            return web.json_response({"error": "not found"}, status=404)
        body = await json_body(request)
        if body is None:
            return bad_request("expected a JSON object")
        if "title" in body and not isinstance(body["title"], str):
            return bad_request("title must be a string")
        if "completed" in body and not isinstance(body["completed"], bool):
            return bad_request("completed must be true or false")
        todo = replace(todo, title=body.get("title", todo.title), completed=body.get("completed", todo.completed))
        store.items[todo.id] = todo
        return web.json_response(asdict(todo))

    @table.delete("/api/todos/{id}")
    async def delete(request: web.Request) -> web.Response:
        if store.items.pop(todo_id(request) or -1, None) is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.Response(status=204)

    @table.get("/")
    async def index(request: web.Request) -> web.Response:
        items = "".join(f'<li class="{"done" if t.completed else ""}">{t.title}</li>'
                        for t in store.items.values()) or "<li>nothing to do</li>"
        return web.Response(text=PAGE.format(title="Todos", content=f"<ul>{items}</ul>"),
                            content_type="text/html")

    @table.get("/about")
    async def about(request: web.Request) -> web.Response:
        content = '<p>Served through http-tunnel. <a href="/">Back</a></p>'
        return web.Response(text=PAGE.format(title="About", content=content), content_type="text/html")

    @table.get("/static/app.css")
    async def css(request: web.Request) -> web.Response:
        return web.Response(text=CSS, content_type="text/css")

    return table


def make_app() -> web.Application:
    app = web.Application()
    app.add_routes(routes(Todos()))
    return app


async def serve(host: str, port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(json.dumps({"event": "sample_app_listening", "url": f"http://{host}:{bound}"}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port))
    except OSError as exc:
        print(f"sample app: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
