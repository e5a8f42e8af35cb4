"""``xfv serve``: the web platform on the store, with uvicorn."""

from __future__ import annotations

import argparse

from xfv.errors import XfvError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``xfv serve [--host HOST] [--port PORT]``."""
    serve = subparsers.add_parser("serve", help="the web platform: explorer, viewer, explain your pair, REST API")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Serve the platform on the configured store until interrupted."""
    try:
        import uvicorn

        from xfv.web import create_app
    except ImportError as exc:
        raise XfvError(
            f"the web platform needs its extra dependencies ({exc.name} is missing): pip install 'xfv[web]'"
        ) from None
    app = create_app()
    print(
        f"xfv: serving on http://{args.host}:{args.port} (store {app.state.services.store.description}); Ctrl-C stops"
    )
    # Keep-alive longer than uvicorn's 5 s, so a busy browser or client rarely reuses a connection
    # the server is just closing.
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", timeout_keep_alive=30)
    return 0
