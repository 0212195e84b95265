"""Task-level quality: exact and normalised match on a prompt/answer set.

Both the unquantized reference and the quantized model answer every question;
the drop is measured per question (paired), so its confidence interval reflects
how often the two models disagree, not the spread of two independent scores.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "MAX_OUTPUT_CHARS",
    "QaAnswer",
    "normalise_answer",
    "summarise",
]

MAX_OUTPUT_CHARS = 1000
Z_95 = 1.959964


def normalise_answer(text: str) -> str:
    """Unicode-folded, case-folded, whitespace-collapsed, trailing punctuation off."""
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    text = re.sub(r"\s+", " ", text)
    return text.rstrip(" .!?;:,")


@dataclass(frozen=True)
class QaAnswer:
    """One model's answer to one question."""

    index: int
    prompt: str
    answer: str  # the expected answer
    output: str  # the model's first line, greedy
    skipped: bool = False  # the prompt did not fit the context

    @property
    def exact(self) -> bool:
        """The first line equals the expected answer, surrounding spaces aside."""
        return not self.skipped and self.output.strip() == self.answer.strip()

    @property
    def normalised(self) -> bool:
        """Equal after :func:`normalise_answer`."""
        return not self.skipped and normalise_answer(self.output) == normalise_answer(
            self.answer
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with both verdicts."""
        out = asdict(self)
        out["output"] = self.output[:MAX_OUTPUT_CHARS]
        out["exact"] = self.exact
        out["normalised"] = self.normalised
        return out


def _paired_drop(ref: Sequence[bool], cand: Sequence[bool]) -> dict[str, float]:
    """Mean of (ref - cand) in points with a normal 95% interval over questions."""
    n = len(ref)
    diffs = [float(r) - float(c) for r, c in zip(ref, cand, strict=True)]
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1) if n > 1 else 0.0
    half = Z_95 * math.sqrt(var / n)
    return {
        "points": round(100.0 * mean, 3),
        "ci95_low_points": round(100.0 * (mean - half), 3),
        "ci95_high_points": round(100.0 * (mean + half), 3),
    }


def summarise(
    reference: Sequence[QaAnswer] | None, candidate: Sequence[QaAnswer]
) -> dict[str, Any]:
    """Scores of both models, the paired drop in points, and the per-question rows."""
    n = len(candidate)
    out: dict[str, Any] = {
        "questions": n,
        "skipped": sum(a.skipped for a in candidate),
        "exact_match": sum(a.exact for a in candidate) / n if n else None,
        "normalised_match": sum(a.normalised for a in candidate) / n if n else None,
    }
    rows = [{"model": a.to_dict()} for a in candidate]
    if reference is not None and n:
        ref_exact = [a.exact for a in reference]
        ref_norm = [a.normalised for a in reference]
        out["reference_exact_match"] = sum(ref_exact) / n
        out["reference_normalised_match"] = sum(ref_norm) / n
        out["exact_match_drop"] = _paired_drop(ref_exact, [a.exact for a in candidate])
        out["normalised_match_drop"] = _paired_drop(
            ref_norm, [a.normalised for a in candidate]
        )
        ref_score = out["reference_normalised_match"]
        out["normalised_match_relative_pct"] = (
            round(100.0 * (out["normalised_match"] - ref_score) / ref_score, 3)
            if ref_score
            else None
        )
        for row, ref in zip(rows, reference, strict=True):
            row["reference"] = ref.to_dict()
    out["rows"] = [
        {
            "index": row["model"]["index"],
            "prompt": row["model"]["prompt"],
            "answer": row["model"]["answer"],
            "output": row["model"]["output"],
            "exact": row["model"]["exact"],
            "normalised": row["model"]["normalised"],
            "skipped": row["model"]["skipped"],
            **(
                {
                    "reference_output": row["reference"]["output"],
                    "reference_exact": row["reference"]["exact"],
                    "reference_normalised": row["reference"]["normalised"],
                }
                if "reference" in row
                else {}
            ),
        }
        for row in rows
    ]
    return out
