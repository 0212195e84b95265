"""Server-rendered SVG charts: readable without JavaScript, with axes, units and titles.

Each chart reads the plain dicts the pages already have (``PlanReport.to_dict()`` and
the job page's result rows) and returns one ``<svg>`` element, or an empty string
when there is nothing to draw. Text is placed so that it never overlaps: labels
that would collide move to the next free spot, with a leader line.

One module per chart (``memory``, ``quality_cost``, ``job_quality``, ``capacity``)
over a small shared base (``base``: sizes, colours, axes, legend; ``labels``: label
placement). ``from frontend import charts; charts.memory_chart(...)`` keeps working.
"""

from __future__ import annotations

from frontend.charts.base import CHAR_W, FONT_PX, NARROW_WIDTH, WIDTH
from frontend.charts.job_quality import job_quality_chart
from frontend.charts.memory import COLORS, SEGMENT_NAMES, memory_chart
from frontend.charts.quality_cost import (
    QUALITY_AXIS_CAP_PCT,
    QUALITY_OUTLIER_RATIO,
    quality_cost_chart,
)

__all__ = [
    "CHAR_W",
    "COLORS",
    "FONT_PX",
    "NARROW_WIDTH",
    "QUALITY_AXIS_CAP_PCT",
    "QUALITY_OUTLIER_RATIO",
    "SEGMENT_NAMES",
    "WIDTH",
    "job_quality_chart",
    "memory_chart",
    "quality_cost_chart",
]
