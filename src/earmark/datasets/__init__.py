"""Datasets: read any folder or CSV as a manifest, and the bundled demo set.

>>> from earmark.datasets import load_dataset, load_demo
>>> manifest = load_demo()
>>> manifest.source
'fsdd'
"""

from .bundled import DEMO_ATTRIBUTION, demo_path, load_demo
from .layouts import LAYOUTS, LayoutError, detect_layout, load_dataset

__all__ = [
    "DEMO_ATTRIBUTION",
    "LAYOUTS",
    "LayoutError",
    "demo_path",
    "detect_layout",
    "load_dataset",
    "load_demo",
]
