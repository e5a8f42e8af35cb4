"""The web platform: landing page, explorer, viewer, explain-your-own-pair, review queue, REST API.

``create_app()`` builds the FastAPI application on the store; ``xfv serve`` runs it.
"""

from xfv.web.app import create_app

__all__ = ["create_app"]
