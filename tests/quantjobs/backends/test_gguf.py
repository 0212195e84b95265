"""GgufBackend on the real sample with real llama.cpp: Q8_0 and Q4_K_M, end to end."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from quantjobs.backends import load_backend
from quantjobs.backends.base import (
    BackendError,
    EvaluateRequest,
    EvaluateResult,
    QuantizeRequest,
    QuantizeResult,
)
from quantjobs.backends.gguf import (
    GGUF_TYPES,
    GgufBackend,
    parse_gguf_format,
    sha256_file,
    verify_quantized,
)
from quantjobs.backends.gguf.ftypes import FALLBACK_TYPES
from quantjobs.backends.llama_eval import LlamaSession
from quantjobs.evaltext import default_eval_text
from quantjobs.samples import sample_path

SAMPLE = "smollm2-135m-instruct-q4_1"
Progress = list[tuple[float, str]]


# ---------------------------------------------------------------- fast checks


def test_importing_the_backend_loads_neither_llama_cpp_nor_numpy() -> None:
    # The registry may import backends in the web process: heavy imports wait.
    code = (
        "import sys; from quantjobs.backends import load_backend; load_backend('gguf');"
        "import quantjobs.backends.gguf_inspect, quantjobs.samples, quantjobs.evaltext;"
        "print(sorted({'llama_cpp', 'numpy', 'gguf', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        cwd=Path(__file__).resolve().parents[3],
    ).stdout  # fmt: skip
    assert out.strip() == "[]"


def test_the_registry_loads_the_gguf_backend() -> None:
    backend = load_backend("gguf")
    assert isinstance(backend, GgufBackend)
    assert backend.name == "gguf" and backend.queue == "cpu"


@pytest.mark.parametrize(
    ("fmt", "name", "ftype"),
    [("gguf-Q4_K_M", "Q4_K_M", 15), ("Q8_0", "Q8_0", 7), ("gguf-q4_k", "Q4_K_M", 15),
     ("gguf-IQ2_XXS", "IQ2_XXS", 19), ("gguf-F16", "F16", 1)],
)  # fmt: skip
def test_formats_parse_to_llama_ftypes(fmt: str, name: str, ftype: int) -> None:
    parsed = parse_gguf_format(fmt)
    assert (parsed.name, parsed.ftype) == (name, ftype)
    assert parsed.format == f"gguf-{name}"


def test_an_unknown_format_lists_the_known_ones() -> None:
    with pytest.raises(
        BackendError, match="Unknown GGUF type 'gguf-Q7_X'; choose one of: F32"
    ):
        parse_gguf_format("gguf-Q7_X")


def test_ftype_numbers_match_llama_cpp() -> None:
    import llama_cpp

    for gtype in GGUF_TYPES.values():
        prefix = "LLAMA_FTYPE_ALL_" if gtype.name == "F32" else "LLAMA_FTYPE_MOSTLY_"
        assert getattr(llama_cpp, prefix + gtype.name) == gtype.ftype, gtype.name


def test_types_needing_an_imatrix_follow_llama_quant() -> None:
    needing = {t.name for t in GGUF_TYPES.values() if t.needs_imatrix}
    assert needing == {
        "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "IQ3_XS",
        "Q2_K_S",
    }  # fmt: skip
    assert FALLBACK_TYPES["Q4_K"] == "Q5_0"  # what the sample's 576-wide rows get


# ---------------------------------------------------------------- the sample


def _quantize(
    work: Path, fmt: str, progress: Progress, log: list[str]
) -> QuantizeResult:
    return GgufBackend().quantize(
        QuantizeRequest(
            source_path=sample_path(SAMPLE),
            source_kind="gguf",
            format=fmt,
            work_dir=work,
            threads=2,
        ),
        lambda fraction, stage: progress.append((fraction, stage)),
        log.append,
    )


def _evaluate(result: QuantizeResult) -> EvaluateResult:
    return GgufBackend().evaluate(
        EvaluateRequest(
            model_path=result.artifact_path,
            model_kind="gguf",
            reference_path=result.reference_path,
            reference_kind="gguf",
            text=default_eval_text(),
            context_tokens=512,
            max_chunks=4,
            generation_tokens=32,
            threads=2,
            qa_pairs=(("The capital of France is", "Paris"),),
            chat_template="off",  # a completion prompt, not a chat question
            bench_prompt_tokens=128,
            bench_repetitions=3,
        ),
        lambda fraction, stage: None,
        lambda line: None,
    )


class Run:
    def __init__(
        self, result: QuantizeResult, progress: Progress, log: list[str]
    ) -> None:
        self.result = result
        self.progress = progress
        self.log = log
        self._measured: EvaluateResult | None = None

    @property
    def measured(self) -> EvaluateResult:
        if self._measured is None:
            self._measured = _evaluate(self.result)
        return self._measured


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    done: dict[str, Run] = {}
    for fmt in ("gguf-Q8_0", "gguf-Q4_K_M"):
        progress: Progress = []
        log: list[str] = []
        work = tmp_path_factory.mktemp(fmt)
        done[fmt] = Run(_quantize(work, fmt, progress, log), progress, log)
    yield done


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["gguf-Q8_0", "gguf-Q4_K_M"])
def test_the_sample_quantizes_to_a_checked_file(runs: dict[str, Run], fmt: str) -> None:
    result = runs[fmt].result
    target = parse_gguf_format(fmt)
    assert result.format == fmt
    assert result.artifact_kind == result.reference_kind == "gguf"
    assert result.artifact_path.name == f"model-{target.name}.gguf"
    assert result.reference_path.name == "reference-F16.gguf"
    # Only the artifact and the reference are left: no partial file, no probe.
    work = result.artifact_path.parent
    assert sorted(p.name for p in work.iterdir()) == sorted(
        [result.artifact_path.name, "reference-F16.gguf"]
    )
    meta = result.metadata
    assert meta["sha256"] == sha256_file(result.artifact_path)
    assert meta["size_bytes"] == result.artifact_path.stat().st_size
    assert meta["tensor_count"] == 272
    assert meta["base"] == {"kind": "dequantized", "from": "Q4_1", "f32_tensors": 61}
    histogram = meta["types_histogram"]
    assert histogram["F32"] == 61  # norms stay F32
    assert target.base_type in histogram


@pytest.mark.slow
def test_q8_0_is_q8_0_everywhere_and_q4_k_m_falls_back_on_narrow_rows(
    runs: dict[str, Run],
) -> None:
    assert runs["gguf-Q8_0"].result.metadata["types_histogram"] == {
        "F32": 61,
        "Q8_0": 211,
    }
    q4 = runs["gguf-Q4_K_M"].result.metadata["types_histogram"]
    # 576 is not a multiple of 256: those rows fall back to Q5_0 (and Q6_K to Q8_0).
    assert q4["Q5_0"] > 0 and q4["Q4_K"] > 0
    assert set(q4) <= {"F32", "Q4_K", "Q5_0", "Q6_K", "Q8_0", "Q5_1"}
    q8_size = runs["gguf-Q8_0"].result.metadata["size_bytes"]
    assert runs["gguf-Q4_K_M"].result.metadata["size_bytes"] < q8_size


@pytest.mark.slow
def test_verification_refuses_a_file_of_another_type(runs: dict[str, Run]) -> None:
    q8 = runs["gguf-Q8_0"].result.artifact_path
    assert verify_quantized(q8, parse_gguf_format("Q8_0"), expected_tensors=272)
    with pytest.raises(BackendError, match="says it is Q8_0, not Q4_K_M"):
        verify_quantized(q8, parse_gguf_format("Q4_K_M"), expected_tensors=272)
    with pytest.raises(BackendError, match="has 272 tensors instead of 273"):
        verify_quantized(q8, parse_gguf_format("Q8_0"), expected_tensors=273)


@pytest.mark.slow
def test_progress_goes_forward_to_one_through_named_stages(
    runs: dict[str, Run],
) -> None:
    progress = runs["gguf-Q4_K_M"].progress
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    stages = {s for _, s in progress}
    assert {"dequantize", "quantize", "verify", "done"} <= stages
    assert any(
        line.startswith("source: llama, 272 tensors, Q4_1")
        for line in runs["gguf-Q4_K_M"].log
    )


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["gguf-Q8_0", "gguf-Q4_K_M"])
def test_the_files_load_in_llama_cpp_and_generate_text(
    runs: dict[str, Run], fmt: str
) -> None:
    with LlamaSession(runs[fmt].result.artifact_path, n_ctx=128) as session:
        prompt = session.tokenize("The capital of France is")
        tokens, _, _ = session.generate_greedy(prompt, 12)
        text = session.detokenize(tokens)
    assert len(tokens) >= 1 and text.strip()


@pytest.mark.slow
def test_q8_0_perplexity_is_within_one_percent_of_the_base(
    runs: dict[str, Run],
) -> None:
    measured = runs["gguf-Q8_0"].measured
    assert abs(measured.perplexity / measured.base_perplexity - 1) < 0.01
    assert measured.kl_divergence < 0.02
    assert measured.top1_agreement > 0.9


@pytest.mark.slow
def test_q4_k_m_diverges_more_but_stays_close(runs: dict[str, Run]) -> None:
    q8, q4 = runs["gguf-Q8_0"].measured, runs["gguf-Q4_K_M"].measured
    assert q4.kl_divergence < 0.1
    assert q8.kl_divergence < q4.kl_divergence
    assert 0.7 < q4.top1_agreement < q8.top1_agreement <= 1.0
    assert q4.base_perplexity == pytest.approx(q8.base_perplexity, rel=1e-9)
    assert q4.perplexity > q4.base_perplexity


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["gguf-Q8_0", "gguf-Q4_K_M"])
def test_speed_memory_and_exact_match_are_measured(
    runs: dict[str, Run], fmt: str
) -> None:
    measured = runs[fmt].measured
    assert measured.tokens_evaluated == 4 * 255
    assert measured.prompt_tokens_per_s > 0 and measured.generation_tokens_per_s > 0
    assert 50 * 2**20 < measured.peak_memory_bytes < 4 * 2**30
    assert 0 < measured.load_time_s < 60
    # "The capital of France is" -> " Paris.": a normalised match; exact match
    # (the text as written) is stricter.
    assert measured.task is not None
    assert measured.task["normalised_match"] == 1.0
    assert measured.exact_match is not None
    assert measured.exact_match <= measured.task["normalised_match"]
    assert measured.gpu_peak_memory_bytes is None


@pytest.mark.slow
def test_formats_of_one_job_share_one_f16_base(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    logs: list[list[str]] = []
    results = []
    for index, fmt in enumerate(("gguf-Q8_0", "gguf-Q6_K")):
        log: list[str] = []
        work = tmp_path / f"out-{index}"
        work.mkdir()
        request = QuantizeRequest(
            source_path=sample_path(SAMPLE),
            source_kind="gguf",
            format=fmt,
            work_dir=work,
            threads=2,
            shared_dir=shared,
        )
        results.append(GgufBackend().quantize(request, lambda f, s: None, log.append))
        logs.append(log)
    first, second = results
    assert (
        first.reference_path == second.reference_path == shared / "reference-F16.gguf"
    )
    assert any("dequantizing to an F16 base" in line for line in logs[0])
    assert not any("dequantizing" in line for line in logs[1])
    assert any("F16 base made for an earlier format" in line for line in logs[1])
    assert second.metadata["base"] == first.metadata["base"]
    # Only the finished base and its description: no partial file left.
    assert sorted(p.name for p in shared.iterdir()) == [
        "reference-F16.gguf",
        "reference-F16.gguf.json",
    ]
    assert sorted(p.name for p in (tmp_path / "out-1").iterdir()) == ["model-Q6_K.gguf"]


def test_a_base_that_fails_half_written_is_not_left_to_share(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantjobs.backends.gguf import dequant

    def half_written(source: Path, dest: Path, *args: object) -> object:
        dest.write_bytes(b"GGUF" + bytes(1000))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dequant, "dequantize_to_f16", half_written)
    shared = tmp_path / "shared"
    shared.mkdir()
    request = QuantizeRequest(
        source_path=sample_path(SAMPLE),
        source_kind="gguf",
        format="gguf-Q8_0",
        work_dir=tmp_path / "out-0",
        threads=2,
        shared_dir=shared,
    )
    request.work_dir.mkdir()
    with pytest.raises(BackendError, match="space"):
        GgufBackend().quantize(request, lambda f, s: None, lambda line: None)
    assert list(shared.iterdir()) == []  # the next format starts afresh
