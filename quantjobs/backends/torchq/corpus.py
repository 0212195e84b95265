"""Offline English text for calibration and held-out evaluation.

Python ships its reference manual's topics (``pydoc_data.topics``): ~465k
characters of English prose and code, present on every worker and CI machine,
so calibration never needs a download (autoawq would fetch pile-val otherwise).
Topics are split into two disjoint sets so that held-out measurements never score
text the quantizer calibrated on.
"""

from __future__ import annotations

HELD_OUT_EVERY = 4  # every 4th topic (sorted by name) is held out


def _topics() -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    return sorted(topics.items())


def calibration_text() -> str:
    """Three quarters of the pydoc topics, for calibration."""
    return "\n\n".join(
        text
        for i, (_, text) in enumerate(_topics())
        if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1
    )


def held_out_text() -> str:
    """The remaining quarter, never used for calibration."""
    return "\n\n".join(
        text
        for i, (_, text) in enumerate(_topics())
        if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1
    )
