"""HF safetensors -> GGUF with llama.cpp's own converter, checked through the sample.

The sample GGUF is turned into a Hugging Face directory with transformers (by
``quantjobs.backends.gguf_to_hf``), converted back by ``convert_hf_to_gguf.py``
from the pinned llama-cpp-python sdist, and compared with the sample
dequantized to F16 by gguf-py: same tensors, same tokens, same perplexity.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from quantjobs.backends.base import BackendError, EvaluateRequest, QuantizeRequest
from quantjobs.backends.gguf import GgufBackend
from quantjobs.backends.gguf.convert import (
    byte_fallback_is_void,
    convert_hf_to_gguf,
    without_void_byte_fallback,
)
from quantjobs.backends.gguf.dequant import dequantize_to_f16
from quantjobs.backends.gguf.llama_cpp_source import ensure_llama_cpp_source
from quantjobs.backends.llama_eval import LlamaSession, evaluate_gguf
from quantjobs.evaltext import default_eval_text
from quantjobs.samples import sample_path

SAMPLE = "smollm2-135m-instruct-q4_1"


def nothing(*_args: object) -> None:
    return None


# ---------------------------------------------------------------- units


def _bpe(byte_fallback: bool, vocab: dict[str, int]) -> dict[str, Any]:
    return {"model": {"type": "BPE", "byte_fallback": byte_fallback, "vocab": vocab}}


def test_byte_fallback_without_byte_tokens_is_void() -> None:
    assert byte_fallback_is_void(_bpe(True, {"Ġthe": 0, "a": 1}))
    # Real byte fallback (Llama-2 style <0xNN> pieces) is left alone.
    assert not byte_fallback_is_void(_bpe(True, {"<0x00>": 0, "a": 1}))
    assert not byte_fallback_is_void(_bpe(False, {"a": 1}))
    assert not byte_fallback_is_void({"model": {"type": "Unigram", "vocab": []}})


def test_a_void_byte_fallback_is_fixed_in_a_linked_copy(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights")
    (model / "tokenizer.json").write_text(json.dumps(_bpe(True, {"Ġa": 0})))
    copy = without_void_byte_fallback(model, tmp_path / "copy", nothing)
    assert copy == tmp_path / "copy"
    assert (copy / "model.safetensors").resolve() == model / "model.safetensors"
    assert json.loads((copy / "tokenizer.json").read_text())["model"] == {
        "type": "BPE", "byte_fallback": False, "vocab": {"Ġa": 0},
    }  # fmt: skip
    # The user's folder is never changed.
    assert json.loads((model / "tokenizer.json").read_text())["model"]["byte_fallback"]
    (model / "tokenizer.json").write_text(json.dumps(_bpe(False, {"Ġa": 0})))
    assert without_void_byte_fallback(model, tmp_path / "again", nothing) == model


def test_missing_llama_cpp_sources_that_cannot_be_fetched_say_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty cache, no kept sdist, and pip told not to reach any index.
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("QUANTPLAN_LLAMA_CPP_SDIST", raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(BackendError, match="QUANTPLAN_LLAMA_CPP_SDIST"):
        ensure_llama_cpp_source(nothing)
    assert not any((tmp_path / "cache" / "llama-cpp-src").glob("llama-cpp-python-*"))


def test_the_sources_are_extracted_once_from_a_named_sdist_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import tarfile

    from quantjobs.backends.gguf.llama_cpp_source import llama_cpp_version

    version = llama_cpp_version()
    top = f"llama_cpp_python-{version}"
    folder = tmp_path / "sdist"
    folder.mkdir()
    with tarfile.open(folder / f"{top}.tar.gz", "w:gz") as tar:
        for name in (
            "CMakeLists.txt", "convert_hf_to_gguf.py", "conversion/__init__.py",
            "gguf-py/gguf/__init__.py",
        ):  # fmt: skip
            info = tarfile.TarInfo(f"{top}/vendor/llama.cpp/{name}")
            info.size = 2
            tar.addfile(info, io.BytesIO(b"#\n"))
        outside = tarfile.TarInfo(f"{top}/setup.py")  # not part of llama.cpp
        tar.addfile(outside, io.BytesIO(b""))
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("QUANTPLAN_LLAMA_CPP_SDIST", str(folder))
    logs: list[str] = []
    src = ensure_llama_cpp_source(logs.append)
    assert src == tmp_path / "cache" / "llama-cpp-src" / f"llama-cpp-python-{version}"
    assert (src / "conversion" / "__init__.py").read_text() == "#\n"
    assert not (src / "setup.py").exists()
    (folder / f"{top}.tar.gz").unlink()  # the second call reads the cache only
    assert ensure_llama_cpp_source(logs.append) == src
    assert len(logs) == 1


@pytest.mark.slow
def test_an_architecture_the_converter_does_not_know_is_a_clear_error(
    tmp_path: Path,
) -> None:
    model = tmp_path / "model"
    model.mkdir()
    config = {"architectures": ["NoSuchForCausalLM"], "model_type": "no_such"}
    (model / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out.gguf"
    with pytest.raises(BackendError) as caught:
        convert_hf_to_gguf(model, out, progress=nothing, log=nothing)
    assert str(caught.value) == (
        "llama.cpp's converter could not convert this model: "
        "Model NoSuchForCausalLM is not supported"
    )
    assert list(tmp_path.iterdir()) == [model]  # no partial output left


# ---------------------------------------------------------------- round trip


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    from quantjobs.backends.gguf_to_hf import gguf_to_hf

    root = tmp_path_factory.mktemp("convert")
    exported = gguf_to_hf(sample_path(SAMPLE), root / "hf", nothing, nothing)
    base = root / "base-F16.gguf"
    dequantize_to_f16(sample_path(SAMPLE), base, nothing, nothing)
    converted = root / "converted-F16.gguf"
    logs: list[str] = []
    convert_hf_to_gguf(exported, converted, progress=nothing, log=logs.append)
    (root / "convert.log").write_text("\n".join(logs))
    yield {"exported": exported, "base": base, "converted": converted, "root": root}


def _reader(path: Path) -> Any:
    from gguf import GGUFReader

    return GGUFReader(str(path))


@pytest.mark.slow
def test_the_export_writes_no_void_byte_fallback(dirs: dict[str, Path]) -> None:
    tokenizer = json.loads((dirs["exported"] / "tokenizer.json").read_text())
    assert tokenizer["model"]["type"] == "BPE"
    assert tokenizer["model"]["byte_fallback"] is False


@pytest.mark.slow
def test_converted_tensors_equal_the_dequantized_base(dirs: dict[str, Path]) -> None:
    base = {t.name: t for t in _reader(dirs["base"]).tensors}
    converted = {t.name: t for t in _reader(dirs["converted"]).tensors}
    assert set(converted) == set(base)  # tied embeddings: no output.weight in either
    for name, tensor in base.items():
        other = converted[name]
        assert other.tensor_type == tensor.tensor_type, name
        # Bit-identical, Q/K projections included: the rotary reordering is right.
        assert np.array_equal(np.asarray(other.data), np.asarray(tensor.data)), name


@pytest.mark.slow
def test_the_converter_recognises_the_samples_tokenizer(dirs: dict[str, Path]) -> None:
    base, converted = _reader(dirs["base"]), _reader(dirs["converted"])
    for key in (
        "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token", "llama.block_count",
        "llama.attention.head_count_kv", "llama.rope.freq_base", "llama.context_length",
        "llama.rope.dimension_count", "general.file_type",
    ):  # fmt: skip
        assert converted.get_field(key).contents() == base.get_field(key).contents(), (
            key
        )
    assert converted.get_field("tokenizer.ggml.pre").contents() == "smollm"
    log = (dirs["root"] / "convert.log").read_text()
    assert "convert: Model architecture: LlamaForCausalLM" in log


@pytest.mark.slow
def test_the_converted_model_scores_like_the_base(dirs: dict[str, Path]) -> None:
    text = default_eval_text()
    with (
        LlamaSession(dirs["converted"], n_ctx=64) as a,
        LlamaSession(dirs["base"], n_ctx=64) as b,
    ):
        assert a.tokenize(text) == b.tokenize(text)  # same tokenizer behaviour
    measured = evaluate_gguf(
        EvaluateRequest(
            model_path=dirs["converted"],
            model_kind="gguf",
            reference_path=dirs["base"],
            reference_kind="gguf",
            text=text,
            max_chunks=2,
            generation_tokens=8,
        ),
        nothing,
        nothing,
    )
    assert measured.perplexity == pytest.approx(measured.base_perplexity, rel=1e-3)
    assert measured.kl_divergence < 1e-4
    assert measured.top1_agreement > 0.99


@pytest.mark.slow
def test_a_checkpoint_with_a_void_byte_fallback_converts_and_loads(
    dirs: dict[str, Path], tmp_path: Path
) -> None:
    # The trap transformers' own export used to set: byte_fallback true on a
    # byte-level vocabulary. Converted as is, llama.cpp aborts when loading it.
    trapped = tmp_path / "trapped"
    shutil.copytree(dirs["exported"], trapped)
    tokenizer = json.loads((trapped / "tokenizer.json").read_text())
    tokenizer["model"]["byte_fallback"] = True
    (trapped / "tokenizer.json").write_text(json.dumps(tokenizer))
    out = tmp_path / "trapped.gguf"
    logs: list[str] = []
    result = convert_hf_to_gguf(trapped, out, progress=nothing, log=logs.append)
    assert result.byte_fallback_fixed
    assert any("byte_fallback false" in line for line in logs)
    assert json.loads((trapped / "tokenizer.json").read_text()) == tokenizer
    assert not (tmp_path / f".{out.name}.source").exists()  # the copy is gone
    assert _reader(out).get_field("tokenizer.ggml.model").contents() == "gpt2"
    with LlamaSession(out, n_ctx=64) as session:
        assert session.tokenize("The 2024 report")


@pytest.mark.slow
def test_the_backend_quantizes_a_hugging_face_source(
    dirs: dict[str, Path], tmp_path: Path
) -> None:
    stages: list[str] = []
    result = GgufBackend().quantize(
        QuantizeRequest(
            source_path=dirs["exported"],
            source_kind="hf",
            format="gguf-Q4_0",
            work_dir=tmp_path,
        ),
        lambda fraction, stage: stages.append(stage),
        nothing,
    )
    assert result.reference_path == tmp_path / "reference-F16.gguf"
    assert result.metadata["base"] == {
        "kind": "converted",
        "architecture": "LlamaForCausalLM",
        "converter": "llama.cpp convert_hf_to_gguf.py",
        "byte_fallback_fixed": False,
    }
    # The tied embedding gets Q6_K, which falls back to Q8_0 on 576-wide rows.
    assert result.metadata["types_histogram"] == {"F32": 61, "Q4_0": 210, "Q8_0": 1}
    assert "convert" in stages
