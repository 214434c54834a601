"""`labmind ui`: a read-only web dashboard over a lab's store (FastAPI, Jinja templates, vendored uPlot/htmx)."""

from labmind.observe.web.app import create_app

__all__ = ["create_app"]
