"""Label placement for scatter plots: each label near its point, none overlapping."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from frontend.charts.base import FONT_PX, MUTED, text_w


@dataclass
class Box:
    """An axis-aligned rectangle in SVG units."""

    x0: float
    y0: float
    x1: float
    y1: float

    def hits(self, other: Box) -> bool:
        """Whether the two boxes overlap."""
        return not (
            self.x1 <= other.x0
            or other.x1 <= self.x0
            or self.y1 <= other.y0
            or other.y1 <= self.y0
        )

    def within(self, bounds: Box) -> bool:
        """Whether this box lies wholly inside ``bounds``."""
        return (
            self.x0 >= bounds.x0
            and self.x1 <= bounds.x1
            and self.y0 >= bounds.y0
            and self.y1 <= bounds.y1
        )


# Spots tried round a point, (dx, dy, text-anchor): close ones first, then further
# out, where the label gets a leader line.
_NEAR = [
    (10, -6, "start"),
    (-10, -6, "end"),
    (10, 14, "start"),
    (-10, 14, "end"),
    (0, -12, "middle"),
    (0, 22, "middle"),
]
_FAR = [
    (dx, dy, anchor)
    for dy in (-26, 30, -42, 46, -58, 62, -74, 78)
    for dx, anchor in ((14, "start"), (-14, "end"), (0, "middle"))
]

Placement = tuple[float, float, str, bool, Box]


def place_labels(
    anchors: Sequence[tuple[float, float, str]],
    bounds: Box,
    avoid: Iterable[Box] = (),
) -> list[tuple[float, float, str, bool]]:
    """Put each label near its point without overlapping another label or a point.

    Returns (x, y, anchor, needs_leader) per label; ``y`` is the text baseline.
    Tries spots round the point, then further out (with a leader line).
    """
    taken = list(avoid)
    placed: list[tuple[float, float, str, bool]] = []
    points = [(px, py) for px, py, _text in anchors]
    for px, py, text in anchors:
        w = text_w(text)
        choice = _first_free_spot(px, py, w, bounds, taken, points)
        if choice is None:  # crowded: keep it readable at the right of the point
            x, y = px + 10, py - 6
            choice = (x, y, "start", False, Box(x, y - FONT_PX, x + w, y + 2))
        taken.append(choice[4])
        placed.append(choice[:4])
    return placed


def _first_free_spot(
    px: float,
    py: float,
    w: float,
    bounds: Box,
    taken: Sequence[Box],
    points: Sequence[tuple[float, float]],
) -> Placement | None:
    h = FONT_PX + 2
    for i, (dx, dy, anchor) in enumerate(_NEAR + _FAR):
        x, y = px + dx, py + dy
        x0 = x if anchor == "start" else x - w if anchor == "end" else x - w / 2
        box = Box(x0, y - FONT_PX + 1, x0 + w, y - FONT_PX + 1 + h)
        # Without a leader line, a label must sit closer to its own point than to
        # any other, or it reads as the other point's name.
        if i < len(_NEAR) and _nearest(box, points) != (px, py):
            continue
        if box.within(bounds) and not any(box.hits(t) for t in taken):
            return (x, y, anchor, i >= len(_NEAR), box)
    return None


def _nearest(box: Box, points: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """The point closest to a label box (distance to the box, not its centre)."""

    def gap(point: tuple[float, float]) -> float:
        dx = max(box.x0 - point[0], 0.0, point[0] - box.x1)
        dy = max(box.y0 - point[1], 0.0, point[1] - box.y1)
        return math.hypot(dx, dy)

    return min(points, key=gap)


def leader_line(px: float, py: float, tx: float, ty: float, leader: bool) -> list[str]:
    """The thin line from a point to a label placed away from it (none when near)."""
    if not leader:
        return []
    return [
        f'<line class="leader" x1="{px:.1f}" y1="{py:.1f}" x2="{tx:.1f}" '
        f'y2="{ty - 4:.1f}" stroke="{MUTED}" stroke-width="0.8"/>'
    ]
