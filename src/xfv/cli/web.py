"""``xfv serve``: the web platform on the store, with uvicorn."""

from __future__ import annotations

import argparse
import os

from xfv.errors import XfvError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``xfv serve [--host HOST] [--port PORT] [--workers N]``."""
    serve = subparsers.add_parser("serve", help="the web platform: explorer, viewer, explain your pair, REST API")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="server processes (default: one per core); jobs and uploads live in the store, so any answers any",
    )
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Serve the platform on the configured store until interrupted."""
    try:
        import uvicorn

        from xfv.web.protocol import HeaderTimeoutProtocol
    except ImportError as exc:
        raise XfvError(
            f"the web platform needs its extra dependencies ({exc.name} is missing): pip install 'xfv[web]'"
        ) from None
    if args.workers < 1:
        raise XfvError(f"--workers must be at least 1, not {args.workers}")
    from xfv.store import open_store

    store = open_store()  # migrate once here, before the workers open it
    print(
        f"xfv: serving on http://{args.host}:{args.port} with {args.workers} worker process(es) "
        f"(store {store.description}); Ctrl-C stops"
    )
    store.close()
    # Keep-alive longer than uvicorn's 5 s, so a busy browser or client rarely reuses a connection
    # the server is just closing; every worker builds its own app on the store.
    uvicorn.run(
        "xfv.web.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=HeaderTimeoutProtocol,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=30,
    )
    return 0
