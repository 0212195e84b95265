"""GgufBackend failures: a clear BackendError, and no partial file left behind."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from quantjobs.backends.base import BackendError, QuantizeRequest
from quantjobs.backends.gguf import GgufBackend, parse_gguf_format
from quantjobs.backends.gguf.backend import _run_llama_quantize
from quantjobs.samples import sample_path

SAMPLE = "smollm2-135m-instruct-q4_1"
ROOT = Path(__file__).resolve().parents[3]


def quantize(
    source: Path, work: Path, fmt: str = "gguf-Q8_0", kind: str = "gguf"
) -> None:
    GgufBackend().quantize(
        QuantizeRequest(
            source_path=source,
            source_kind=kind,  # type: ignore[arg-type]
            format=fmt,
            work_dir=work,
        ),
        lambda fraction, stage: None,
        lambda line: None,
    )


def test_an_unknown_type_is_refused_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="Unknown GGUF type 'gguf-Q9_9'"):
        quantize(sample_path(SAMPLE), tmp_path, fmt="gguf-Q9_9")
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_source_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "upload.gguf"
    data = bytearray(sample_path(SAMPLE).read_bytes()[:4096])
    data[8:16] = (1 << 63).to_bytes(8, "little")  # tensor count 2^63
    source.write_bytes(bytes(data))
    work = tmp_path / "work"
    with pytest.raises(
        BackendError, match="upload.gguf was refused: The header claims"
    ):
        quantize(source, work)
    assert list(work.iterdir()) == []


def test_a_truncated_source_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "cut.gguf"
    source.write_bytes(sample_path(SAMPLE).read_bytes()[:50_000_000])
    work = tmp_path / "work"
    with pytest.raises(
        BackendError, match="ends past the end of the 50,000,000-byte file"
    ):
        quantize(source, work)
    assert list(work.iterdir()) == []


def test_a_work_dir_that_cannot_be_created_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(
        BackendError, match="Could not write the output while preparing"
    ):
        quantize(sample_path(SAMPLE), blocker / "work")


def test_a_non_directory_hf_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="must be a model directory"):
        quantize(sample_path(SAMPLE), tmp_path / "w", kind="hf")


@pytest.mark.slow
def test_llama_cpp_refuses_to_requantize_and_we_say_why(tmp_path: Path) -> None:
    # What the dequantized base protects against: quantizing the Q4_1 sample directly.
    out = tmp_path / "direct.gguf"
    with pytest.raises(BackendError, match="refused to requantize"):
        _run_llama_quantize(
            sample_path(SAMPLE),
            out,
            parse_gguf_format("Q4_K_M"),
            threads=2,
            imatrix=None,
            progress=lambda fraction, stage: None,
            log=lambda line: None,
        )


@pytest.mark.slow
def test_an_iq_type_without_imatrix_gets_a_message_naming_a_fallback(
    tmp_path: Path,
) -> None:
    from quantjobs.backends.gguf.dequant import dequantize_to_f16

    base = tmp_path / "base.gguf"
    dequantize_to_f16(sample_path(SAMPLE), base, lambda f, s: None, lambda line: None)
    with pytest.raises(
        BackendError, match="IQ2_XXS needs an importance matrix .* Q2_K"
    ):
        _run_llama_quantize(
            base,
            tmp_path / "iq2.gguf",
            parse_gguf_format("IQ2_XXS"),
            threads=2,
            imatrix=None,
            progress=lambda fraction, stage: None,
            log=lambda line: None,
        )


CHILD = """
import json, sys
from pathlib import Path
from quantjobs.backends.base import BackendError, QuantizeRequest
from quantjobs.backends.gguf import GgufBackend
from quantjobs.samples import sample_path
work = Path(sys.argv[1])
try:
    GgufBackend().quantize(
        QuantizeRequest(source_path=sample_path("smollm2-135m-instruct-q4_1"),
                        source_kind="gguf", format=sys.argv[2], work_dir=work),
        lambda f, s: None, lambda line: None)
    error = None
except BackendError as exc:
    error = str(exc)
print(json.dumps({"error": error, "left": sorted(p.name for p in work.iterdir())}))
"""


def run_with_file_size_limit(
    work: Path, fmt: str, limit_bytes: int
) -> dict[str, object]:
    """Quantize in a child whose files may not grow past ``limit_bytes``: a full disk."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    work.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(work), fmt],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        preexec_fn=limit,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow
def test_a_full_disk_while_dequantizing_leaves_no_partial_base(tmp_path: Path) -> None:
    # The F16 base is ~270 MB; the disk "fills up" at 100 MB.
    result = run_with_file_size_limit(tmp_path / "work", "gguf-Q8_0", 100_000_000)
    assert result["error"] == (
        "The work directory ran out of disk space while producing Q8_0."
    )
    assert result["left"] == []


@pytest.mark.slow
def test_a_full_disk_while_llama_cpp_writes_leaves_no_partial_file(
    tmp_path: Path,
) -> None:
    # The base fits (270 MB) but the 540 MB F32 output does not.
    result = run_with_file_size_limit(tmp_path / "work", "gguf-F32", 300_000_000)
    error = str(result["error"])
    assert error.startswith("llama.cpp could not write the quantized file"), error
    assert result["left"] == []
