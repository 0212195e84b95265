"""Weight formats the planner knows: parse a format string, list them all.

Canonical ids: ``fp32``, ``fp16``, ``bf16``, ``fp8``, ``int8``,
``gptq-{2,3,4,8}bit-g{32,64,128,-1}``, ``awq-4bit-g{32,64,128}``,
``rtn-int{4,8}-g{N}`` and ``gguf-{TYPE}`` for every llama-quantize type.
Input is case-insensitive; a bare GGUF type (``q4_k_m``) is accepted too.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import lru_cache

from .ggml import GGML_TYPES
from .gguf_types import GGUF_FILE_TYPES

FAMILIES = ("fp", "int8", "gptq", "awq", "gguf", "rtn")

GPTQ_BITS = (2, 3, 4, 8)
GPTQ_GROUPS = (32, 64, 128, -1)
AWQ_GROUPS = (32, 64, 128)
RTN_BITS = (4, 8)
RTN_LISTED_GROUPS = (32, 64, 128, -1)
MAX_GROUP_SIZE = 8192


class FormatError(ValueError):
    """An unknown or malformed format string; the message lists close matches."""


@dataclass(frozen=True, slots=True)
class FormatSpec:
    """A weight format: how weights are stored, what runs it, how many bits it costs."""

    id: str
    label: str
    family: str
    nominal_bits_per_weight: float
    needs_cuda: bool
    needs_imatrix: bool
    description: str
    weight_bits: int
    group_size: int | None = None  # -1: one group per output channel
    gguf_type: str | None = None
    compute_dtype: str = "fp16"  # the dtype matrix multiplies run in on a GPU

    def __hash__(self) -> int:
        return hash(self.id)  # the id determines every other field

    def to_dict(self) -> dict[str, object]:
        """Plain dict for JSON."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def _group_bits(bits: int, group: int) -> float:
    # One fp16 scale and one packed zero point per group of weights.
    return bits + (16 + bits) / group if group > 0 else float(bits)


def _group_label(group: int) -> str:
    return "per-channel" if group == -1 else f"group {group}"


def _fp_formats() -> list[FormatSpec]:
    return [
        FormatSpec(
            "fp32",
            "FP32",
            "fp",
            32.0,
            False,
            False,
            "32-bit float weights; twice the memory of fp16, no quality gain "
            "for inference",
            32,
            compute_dtype="fp32",
        ),
        FormatSpec(
            "fp16",
            "FP16",
            "fp",
            16.0,
            False,
            False,
            "16-bit float weights, the usual unquantized baseline",
            16,
        ),
        FormatSpec(
            "bf16",
            "BF16",
            "fp",
            16.0,
            False,
            False,
            "bfloat16 weights, as most models are released",
            16,
            compute_dtype="bf16",
        ),
        FormatSpec(
            "fp8",
            "FP8 (E4M3)",
            "fp",
            8.0,
            True,
            False,
            "8-bit float weights with per-tensor scales (W8A8 on Ada/Hopper, "
            "weight-only on Ampere); embeddings and lm_head stay 16-bit",
            8,
            compute_dtype="fp8",
        ),
        FormatSpec(
            "int8",
            "INT8 W8A8",
            "int8",
            8.0,
            True,
            False,
            "8-bit integer weights with per-channel scales (SmoothQuant-style "
            "W8A8); embeddings and lm_head stay 16-bit",
            8,
            compute_dtype="int8",
        ),
    ]


def _gptq(bits: int, group: int) -> FormatSpec:
    g = "-1" if group == -1 else str(group)
    return FormatSpec(
        f"gptq-{bits}bit-g{g}",
        f"GPTQ {bits}-bit, {_group_label(group)}",
        "gptq",
        round(_group_bits(bits, group), 4),
        True,
        False,
        f"GPTQ {bits}-bit ({_group_label(group)}): int32-packed weights, fp16 scales, "
        "packed zeros and g_idx; calibrated on sample text; needs CUDA kernels",
        bits,
        group,
    )


def _awq(bits: int, group: int) -> FormatSpec:
    return FormatSpec(
        f"awq-{bits}bit-g{group}",
        f"AWQ {bits}-bit, {_group_label(group)}",
        "awq",
        round(_group_bits(bits, group), 4),
        True,
        False,
        f"AWQ {bits}-bit (group {group}): activation-aware scaling then int32-packed "
        "weights with fp16 scales and packed zeros; needs CUDA kernels",
        bits,
        group,
    )


def _rtn(bits: int, group: int) -> FormatSpec:
    g = "-1" if group == -1 else str(group)
    return FormatSpec(
        f"rtn-int{bits}-g{g}",
        f"RTN INT{bits}, {_group_label(group)}",
        "rtn",
        round(_group_bits(bits, group), 4),
        True,
        False,
        f"Round-to-nearest INT{bits} ({_group_label(group)}), no calibration: the "
        "baseline GPTQ/AWQ improve on, saved in the GPTQ layout",
        bits,
        group,
    )


def _gguf(name: str) -> FormatSpec:
    ft = GGUF_FILE_TYPES[name]
    main = GGML_TYPES[ft.default_type]
    return FormatSpec(
        f"gguf-{name}",
        f"GGUF {name}",
        "gguf",
        round(main.bits_per_weight, 4),
        False,
        ft.needs_imatrix,
        f"llama.cpp GGUF {name}: {ft.description}"
        + ("; needs an importance matrix" if ft.needs_imatrix else ""),
        max(1, round(main.bits_per_weight)),
        gguf_type=name,
        compute_dtype="fp32" if name == "F32" else "fp16",
    )


@lru_cache(maxsize=1)
def _listed() -> tuple[FormatSpec, ...]:
    out = _fp_formats()
    out += [_gptq(b, g) for b in GPTQ_BITS for g in GPTQ_GROUPS]
    out += [_awq(4, g) for g in AWQ_GROUPS]
    out += [_rtn(b, g) for b in RTN_BITS for g in RTN_LISTED_GROUPS]
    out += [_gguf(name) for name in GGUF_FILE_TYPES]
    return tuple(out)


def list_formats() -> list[FormatSpec]:
    """Every format with a canonical id, in display order."""
    return list(_listed())


_ALIASES = {
    "fp32": "fp32",
    "f32": "fp32",
    "float32": "fp32",
    "fp16": "fp16",
    "f16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp8": "fp8",
    "f8": "fp8",
    "fp8_e4m3": "fp8",
    "fp8-e4m3": "fp8",
    "float8": "fp8",
    "int8": "int8",
    "w8a8": "int8",
    "int8-w8a8": "int8",
}
_GPTQ_RE = re.compile(r"gptq-(\d+)bit-g(-?\d+)")
_AWQ_RE = re.compile(r"awq-(\d+)bit-g(-?\d+)")
_RTN_RE = re.compile(r"rtn-int(\d+)-g(-?\d+)")


def _check_group(text: str, group: int, allowed: tuple[int, ...] | None) -> None:
    if allowed is not None and group not in allowed:
        raise FormatError(
            f"{text!r}: group size must be one of {', '.join(map(str, allowed))}"
        )
    if group == -1:
        return
    if group < 16 or group > MAX_GROUP_SIZE or group & (group - 1):
        raise FormatError(
            f"{text!r}: group size must be -1 (per channel) or a power of "
            f"two from 16 to {MAX_GROUP_SIZE}"
        )


def parse_format(text: str) -> FormatSpec:
    """Parse a format string (case-insensitive) into its canonical ``FormatSpec``."""
    if not isinstance(text, str):
        raise FormatError(
            f"format must be a string such as 'gguf-Q4_K_M', got {text!r}"
        )
    return _parse(text.strip())


@lru_cache(maxsize=512)
def _parse(raw: str) -> FormatSpec:
    key = raw.lower()
    if key in _ALIASES:
        return _by_id()[_ALIASES[key]]
    gguf_name = key[5:] if key.startswith("gguf-") else key
    if gguf_name.upper() in GGUF_FILE_TYPES:
        return _by_id()["gguf-" + gguf_name.upper()]
    if m := _GPTQ_RE.fullmatch(key):
        bits, group = int(m[1]), int(m[2])
        if bits not in GPTQ_BITS:
            raise FormatError(f"{raw!r}: GPTQ bits must be one of 2, 3, 4, 8")
        _check_group(raw, group, GPTQ_GROUPS)
        return _gptq(bits, group)
    if m := _AWQ_RE.fullmatch(key):
        bits, group = int(m[1]), int(m[2])
        if bits != 4:
            raise FormatError(f"{raw!r}: AWQ is 4-bit only (e.g. awq-4bit-g128)")
        _check_group(raw, group, AWQ_GROUPS)
        return _awq(bits, group)
    if m := _RTN_RE.fullmatch(key):
        bits, group = int(m[1]), int(m[2])
        if bits not in RTN_BITS:
            raise FormatError(f"{raw!r}: RTN bits must be 4 or 8 (e.g. rtn-int4-g128)")
        _check_group(raw, group, None)
        return _rtn(bits, group)
    ids = [f.id for f in _listed()]
    close = difflib.get_close_matches(key, [i.lower() for i in ids], n=4, cutoff=0.5)
    by_lower = {i.lower(): i for i in ids}
    hint = (
        f"; did you mean {', '.join(by_lower[c] for c in close)}?"
        if close
        else (
            "; expected e.g. fp16, fp8, int8, gptq-4bit-g128, awq-4bit-g128, rtn-int4-g128, "
            "gguf-Q4_K_M"
        )
    )
    raise FormatError(f"unknown format {raw[:60]!r}{hint}")


@lru_cache(maxsize=1)
def _by_id() -> dict[str, FormatSpec]:
    return {f.id: f for f in _listed()}
