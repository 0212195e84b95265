"""Warm a web worker before it takes requests (called from deploy/gunicorn.conf.py).

gunicorn recycles each worker after ~2,000 requests (``max_requests``). A fresh
worker otherwise pays inside its first requests for importing every view module
(Django resolves the URLconf lazily), reading the planner's catalogs and the
modules the plans endpoint imports on demand; under load those requests are the
slowest one percent. Last, ``gc.freeze()`` moves the objects loaded so far (Django,
DRF, the catalogs: over 100,000) out of the collector's reach, so a full collection
during a request does not walk them all again.
"""

from __future__ import annotations

import gc
import importlib
import logging
import time

logger = logging.getLogger(__name__)

# Imported on demand by request paths that every plan takes.
LAZY_MODULES = (
    "quantjobs.backends.reference",
    "quantjobs.sources",
    "rest_framework.renderers",
    "rest_framework.parsers",
)


def warm() -> float:
    """Import the URLconf and its views, load the catalogs; seconds it took."""
    from django.urls import get_resolver

    from planner.engine import catalog

    started = time.perf_counter()
    get_resolver().url_patterns  # noqa: B018 - imports every view module
    for module in LAZY_MODULES:
        importlib.import_module(module)
    catalog.load_models()
    catalog.load_gpus()
    catalog.load_api_prices()
    catalog.load_published_sizes()
    gc.collect()
    gc.freeze()
    return time.perf_counter() - started
