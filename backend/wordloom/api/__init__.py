"""The HTTP API (FastAPI).  `create_app()` builds it; routers live in `routers/`, one per resource."""
from .app import create_app

__all__ = ["create_app"]
