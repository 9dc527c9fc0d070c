"""``earmark serve``: the labelling loop in a browser (see :mod:`.server`)."""

from .server import LabellingSession, create_app, serve

__all__ = ["LabellingSession", "create_app", "serve"]
