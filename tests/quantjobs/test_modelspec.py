"""A ModelSpec from real GGUF files Quantplan never saw, read in the sandboxed inspector.

The files are tiny random-weight Qwen2 and Gemma2 models written the way llama.cpp's
converter writes them (tests/gguf_tiny.py); llama.cpp's own quantizer then makes
the files whose sizes the plan must predict.
"""

from __future__ import annotations

import ctypes
import shutil
from pathlib import Path

import pytest

from planner.engine import artifact_bytes, gguf_tensor_types
from planner.engine.gguf_rules import GGUF_FILE_TYPES
from quantjobs.modelspec import ModelSpecError, spec_from_gguf, spec_from_path
from tests.gguf_tiny import TINY_QWEN2, write_tiny_gguf

QUICK = {"vocab_without_tokenizer": 512}


def _quantize(source: Path, target: Path, gguf_type: str) -> None:
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = GGUF_FILE_TYPES[gguf_type].ftype_id
    params.nthread = 2
    rc = llama_cpp.llama_model_quantize(
        str(source).encode(), str(target).encode(), ctypes.byref(params)
    )
    assert rc == 0


def _types(path: Path) -> dict[str, str]:
    import gguf

    return {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(path)).tensors}


@pytest.mark.parametrize("arch", ["qwen2", "gemma2"])
def test_a_gguf_of_another_architecture_is_planned_within_half_a_percent(
    tiny_ggufs: dict[str, Path], tmp_path: Path, arch: str
) -> None:
    source = tiny_ggufs[arch]
    spec = spec_from_gguf(source)
    assert spec.gguf_arch == arch and spec.name == f"Tiny {arch.title()} Test"
    assert spec.stored_format == "gguf-F16"
    assert artifact_bytes(spec, "gguf-F16") == source.stat().st_size  # as stored
    for gguf_type in ("Q8_0", "Q4_K_M"):
        target = tmp_path / f"{arch}-{gguf_type}.gguf"
        _quantize(source, target, gguf_type)
        real = target.stat().st_size
        planned = artifact_bytes(spec, f"gguf-{gguf_type}")  # as if converted
        assert abs(planned - real) / real < 0.005, (gguf_type, planned, real)
        assert dict(gguf_tensor_types(spec, gguf_type)) == _types(target)
        # The quantized file read back: its own format is exactly the file.
        again = spec_from_gguf(target)
        assert again.stored_format == f"gguf-{gguf_type}"
        assert artifact_bytes(again, f"gguf-{gguf_type}") == real


def test_a_split_gguf_is_read_as_one_model(tmp_path: Path) -> None:
    whole = spec_from_gguf(
        write_tiny_gguf(tmp_path / "whole.gguf", TINY_QWEN2, **QUICK)[0]
    )
    parts = write_tiny_gguf(tmp_path / "big.gguf", TINY_QWEN2, split_parts=3, **QUICK)
    assert [p.name for p in parts][-1] == "big-00003-of-00003.gguf"
    for named in (parts[0], parts[2]):  # any part names the whole set
        split = spec_from_gguf(named)
        assert split.stored_tensors == whole.stored_tensors
        assert split.stored_file_bytes == sum(p.stat().st_size for p in parts)
        # Only the split.* keys (tens of bytes) of the first part's header differ.
        assert (
            0
            <= artifact_bytes(split, "gguf-Q8_0") - artifact_bytes(whole, "gguf-Q8_0")
            < 100
        )


def test_a_split_gguf_with_a_part_missing_names_it(tmp_path: Path) -> None:
    parts = write_tiny_gguf(tmp_path / "big.gguf", TINY_QWEN2, split_parts=3, **QUICK)
    parts[1].unlink()
    with pytest.raises(ModelSpecError, match="big-00002-of-00003.gguf is missing"):
        spec_from_gguf(parts[0])


def test_a_lone_part_of_a_split_is_refused(tmp_path: Path) -> None:
    parts = write_tiny_gguf(tmp_path / "big.gguf", TINY_QWEN2, split_parts=2, **QUICK)
    lone = tmp_path / "renamed.gguf"
    shutil.copy(parts[0], lone)
    with pytest.raises(ModelSpecError, match="part 1 of a model split into 2 files"):
        spec_from_gguf(lone)


def test_a_truncated_gguf_is_refused(
    tiny_ggufs: dict[str, Path], tmp_path: Path
) -> None:
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_ggufs["qwen2"].read_bytes()[:2_000_000])
    with pytest.raises(ModelSpecError, match="truncated or corrupt|ends past the end"):
        spec_from_gguf(cut)


def test_an_unknown_architecture_is_refused_with_its_name(tmp_path: Path) -> None:
    path = write_tiny_gguf(
        tmp_path / "bert.gguf", {**TINY_QWEN2, "arch": "bert"}, **QUICK
    )[0]
    with pytest.raises(ModelSpecError, match="'bert' is not an architecture"):
        spec_from_gguf(path)


def test_a_missing_key_is_named(tmp_path: Path) -> None:
    path = write_tiny_gguf(
        tmp_path / "nokey.gguf",
        TINY_QWEN2,
        drop_keys=("qwen2.attention.head_count",),
        **QUICK,
    )[0]
    with pytest.raises(ModelSpecError, match="qwen2.attention.head_count: missing"):
        spec_from_gguf(path)


def test_a_model_folder_is_read_from_its_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        '{"_name_or_path": "acme/tiny-qwen", "model_type": "qwen2", '
        '"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, '
        '"num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 49152}'
    )
    spec = spec_from_path(tmp_path)
    assert spec.name == "acme/tiny-qwen" and spec.gguf_arch == "qwen2"
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    with pytest.raises(ModelSpecError, match="config.json: hidden_size"):
        spec_from_path(tmp_path)
