"""Planner format strings of the weight-only methods, parsed into one dataclass.

Grammar (``N`` is a positive group size, or ``-1`` for one group per output row):

- ``rtn-int{4,8}-g{N}``                 round-to-nearest, asymmetric
- ``awq-4bit-g{N}``                     AWQ, zero point, GEMM packing
- ``gptq-{2,3,4,8}bit-g{N}[-act][-sym|-asym]``
                                        GPTQ; ``-act`` = act-order (``desc_act``);
                                        symmetric unless ``-asym``
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from quantjobs.backends.base import BackendError

Method = Literal["rtn", "awq", "gptq"]

_RTN = re.compile(r"^rtn-int(?P<bits>\d+)-g(?P<group>-1|\d+)$")
_AWQ = re.compile(r"^awq-(?P<bits>\d+)bit-g(?P<group>-1|\d+)$")
_GPTQ = re.compile(
    r"^gptq-(?P<bits>\d+)bit-g(?P<group>-1|\d+)(?P<act>-act)?(?P<sym>-sym|-asym)?$"
)
_EXAMPLES: dict[str, str] = {
    "rtn": "rtn-int4-g64 or rtn-int8-g-1",
    "awq": "awq-4bit-g64",
    "gptq": "gptq-4bit-g64 (add -act for act-order, -asym for zero points)",
}
_BITS: dict[str, tuple[int, ...]] = {
    "rtn": (4, 8),
    # autoawq's GEMM packing and the AWQ kernels of transformers/vLLM are 4-bit only.
    "awq": (4,),
    "gptq": (2, 3, 4, 8),
}


@dataclass(frozen=True)
class WeightFormat:
    """One weight-only integer format: bit width, grouping and zero-point style."""

    method: Method
    bits: int
    group_size: int  # -1: one group spanning the whole input dimension
    sym: bool
    desc_act: bool = False

    @property
    def maxq(self) -> int:
        """Largest stored integer, ``2**bits - 1``."""
        return (1 << self.bits) - 1


def parse_format(fmt: str, method: Method) -> WeightFormat:
    """Parse a planner format string for ``method``; BackendError if malformed."""
    pattern = {"rtn": _RTN, "awq": _AWQ, "gptq": _GPTQ}[method]
    match = pattern.match(fmt.strip())
    if match is None:
        raise BackendError(
            f"Format {fmt!r} is not a {method.upper()} format; "
            f"use e.g. {_EXAMPLES[method]}."
        )
    bits = int(match.group("bits"))
    group = int(match.group("group"))
    if bits not in _BITS[method]:
        allowed = ", ".join(str(b) for b in _BITS[method])
        raise BackendError(
            f"{method.upper()} supports {allowed}-bit weights, not {bits}-bit "
            f"(format {fmt!r})."
        )
    if group == 0 or (group != -1 and group < 8):
        raise BackendError(
            f"Group size {group} in {fmt!r} is too small; use 32, 64, 128 or -1."
        )
    if method == "gptq":
        sym = match.group("sym") != "-asym"
        desc_act = match.group("act") is not None
    else:
        # RTN and AWQ are asymmetric with zero points by definition here.
        sym = False
        desc_act = False
    return WeightFormat(method, bits, group, sym=sym, desc_act=desc_act)


def apply_options(fmt: WeightFormat, options: dict[str, Any]) -> WeightFormat:
    """Let request options override act-order / symmetry where the method allows."""
    if fmt.method != "gptq":
        return fmt
    changes: dict[str, Any] = {}
    if "desc_act" in options:
        changes["desc_act"] = bool(options["desc_act"])
    if "sym" in options:
        changes["sym"] = bool(options["sym"])
    return replace(fmt, **changes) if changes else fmt


def check_group_size(fmt: WeightFormat, in_features: dict[str, int]) -> None:
    """Refuse a group size that does not divide every quantized layer's width."""
    if fmt.group_size == -1:
        return
    bad = {name: n for name, n in in_features.items() if n % fmt.group_size}
    if not bad:
        return
    name, width = next(iter(bad.items()))
    widths = sorted(set(in_features.values()))
    ok = [g for g in (32, 64, 128, 256) if all(w % g == 0 for w in widths)]
    hint = ", ".join(str(g) for g in ok) + " or -1" if ok else "-1"
    raise BackendError(
        f"Group size {fmt.group_size} does not divide the input width {width} of "
        f"{name}; this model needs a group size of {hint}."
    )
