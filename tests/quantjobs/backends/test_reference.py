"""What a result is measured against: an already quantized source is never called
unquantized (quantjobs/backends/reference.py and the child's origin check)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from quantjobs.backends import child, reference
from quantjobs.backends.child import gguf_origin_type
from quantjobs.samples import SAMPLES


def test_a_dequantized_gguf_base_is_named_after_its_quantization() -> None:
    # What GgufBackend._make_base writes for the Q4_1 sample.
    described = reference.from_gguf_base({"kind": "dequantized", "from": "Q4_1"})

    assert described is not None
    assert described["label"] == "the Q4_1 file, dequantized"
    assert described["quantized_source"] is True
    assert "adds to what Q4_1 already lost" in described["warning"]
    assert "unquantized" not in described["label"]


@pytest.mark.parametrize(
    ("base", "label"),
    [
        ({"kind": "source", "file_type": "F16"}, "the source's own F16 weights"),
        ({"kind": "converted"}, "the source checkpoint, converted to F16"),
    ],
)
def test_a_float_source_is_the_unquantized_reference(
    base: dict[str, str], label: str
) -> None:
    described = reference.from_gguf_base(base)

    assert described is not None
    assert described["label"].startswith(label)
    assert described["quantized_source"] is False and described["warning"] == ""


def test_the_origin_of_a_converted_source_wins_over_what_the_backend_saw() -> None:
    # A torch method on the sample only sees its dequantized safetensors copy.
    described = reference.describe(origin_type="Q4_1", base=None, source_kind="hf")

    assert described["label"] == "the Q4_1 file, dequantized"
    assert (
        reference.describe(origin_type=None, base=None, source_kind="hf")["label"]
        == "the source checkpoint (unquantized)"
    )


def test_results_stored_before_the_reference_read_it_from_the_gguf_base() -> None:
    old = {"metadata": {"base": {"kind": "dequantized", "from": "Q4_K_M"}}}

    assert reference.from_metrics(old)["label"] == "the Q4_K_M file, dequantized"
    assert reference.from_metrics({"metadata": {}}) is None
    stored = {"reference": reference.dequantized("Q8_0"), **old}
    assert reference.from_metrics(stored)["source_type"] == "Q8_0"


@pytest.mark.parametrize(
    ("file_type", "histogram", "expected"),
    [
        ("MOSTLY_Q4_1", {"Q4_1": 200, "F32": 60}, "Q4_1"),
        ("F16", {"F16": 200, "F32": 60}, None),
        ("BF16", None, None),
        (None, {"Q6_K": 1, "Q4_K": 150, "F32": 60}, "Q4_K"),
    ],
)
def test_quantized_type_names_the_quantization_or_none_for_float(
    file_type: str | None, histogram: dict[str, int] | None, expected: str | None
) -> None:
    assert reference.quantized_type(file_type, histogram) == expected


def test_the_child_reads_the_samples_quantization_from_the_file() -> None:
    from quantjobs.samples import sample_path

    sample_id = next(iter(SAMPLES))

    assert gguf_origin_type(sample_path(sample_id)) == "Q4_1"


@pytest.mark.slow
def test_a_torch_method_on_the_sample_reports_the_q4_1_reference(
    tmp_path: Path,
) -> None:
    """The real child run: RTN sees only the converted safetensors copy of the sample,
    yet its result and log name the Q4_1 file as the reference."""
    from tests.quantjobs.backends.test_gguf_to_hf import SAMPLE_CACHE

    stream = io.StringIO()
    request = {
        "method": "rtn",
        "formats": ["rtn-int8-g-1"],
        "source": {"kind": "sample", "ref": next(iter(SAMPLES)), "as_hf": False},
        "work_dir": str(tmp_path / "work"),
        "cache_dir": str(SAMPLE_CACHE),
        "eval_text_path": None,
        "options": {"context_tokens": 128, "max_chunks": 2, "generation_tokens": 4},
        "threads": 2,
    }

    child.run(request, child.Reporter(stream))

    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    (result,) = [e for e in events if e["event"] == "result"]
    assert result["reference"]["label"] == "the Q4_1 file, dequantized"
    assert result["reference"]["quantized_source"] is True
    logs = [e["line"] for e in events if e["event"] == "log"]
    assert "Reference for quality: the Q4_1 file, dequantized." in logs
    assert any("adds to what Q4_1 already lost" in line for line in logs)
