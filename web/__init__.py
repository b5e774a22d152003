"""dreamweb: the HTTP gateway that lets a browser start renders on dreamd and watch them form.

    dreamweb --dreamd 127.0.0.1:50051 --listen 127.0.0.1:8080

Modules: `app` (the routes, `create_app(config)`, `main`), `config` (WebConfig: every flag),
`forms` (a render's form -> the SDK call, from the settings dataclasses), `events` (job events as
Server-Sent Events and JSON). The page is `static/` (HTML, CSS and JS, no build step).
It needs dreamrender[web]; it imports the SDK, never the server or its engines.
"""
from .app import create_app, main, serve
from .config import WebConfig

__all__ = ["WebConfig", "create_app", "serve", "main"]
