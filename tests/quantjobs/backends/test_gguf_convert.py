"""HF safetensors -> GGUF conversion, checked by a round trip through the sample.

The sample GGUF is turned into a Hugging Face directory with transformers (by
``quantjobs.backends.hf_convert``), converted back with our converter, and
compared with the sample dequantized to F16 by gguf-py: same tensors, same
tokens, same perplexity.
"""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from quantjobs.backends.base import BackendError, EvaluateRequest, QuantizeRequest
from quantjobs.backends.gguf import GgufBackend
from quantjobs.backends.gguf.dequant import dequantize_to_f16
from quantjobs.backends.gguf.from_hf import (
    _load,
    _read_safetensors_index,
    convert_hf_to_gguf,
    detect_pre_tokenizer,
    permute_qk,
)
from quantjobs.backends.llama_eval import LlamaSession, evaluate_gguf
from quantjobs.evaltext import default_eval_text
from quantjobs.samples import sample_path

SAMPLE = "smollm2-135m-instruct-q4_1"


def nothing(*_args: object) -> None:
    return None


# ---------------------------------------------------------------- units


def test_permute_qk_interleaves_the_two_rotary_halves_of_each_head() -> None:
    # 2 heads of 4 rows: HF keeps [a0 a1 | b0 b1] per head, llama.cpp [a0 b0 a1 b1].
    rows = np.arange(8, dtype=np.float32).reshape(8, 1) * np.ones((1, 3), np.float32)
    out = permute_qk(rows, n_head=2)
    assert out[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    with pytest.raises(BackendError, match="cannot hold 3 heads"):
        permute_qk(rows, n_head=3)


@pytest.mark.parametrize(
    ("pre_tokenizer", "expected"),
    [
        ({"type": "ByteLevel", "use_regex": True}, "gpt-2"),
        (
            {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Digits", "individual_digits": True},
                    {"type": "ByteLevel", "use_regex": True},
                ],
            },
            "smollm",
        ),
        (
            {
                "type": "Sequence",
                "pretokenizers": [
                    {
                        "type": "Split",
                        "pattern": {
                            "Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?"
                            "\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                            "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
                        },
                    },
                    {"type": "ByteLevel", "use_regex": False},
                ],
            },
            "llama-bpe",
        ),
    ],
)
def test_pre_tokenizers_are_recognised(
    pre_tokenizer: dict[str, Any], expected: str
) -> None:
    assert detect_pre_tokenizer({"pre_tokenizer": pre_tokenizer}) == expected


def test_an_unknown_pre_tokenizer_asks_for_the_option() -> None:
    with pytest.raises(BackendError, match="set the option tokenizer_pre"):
        detect_pre_tokenizer({"pre_tokenizer": {"type": "Whitespace"}})


def write_safetensors(
    path: Path, tensors: dict[str, tuple[str, list[int], bytes]]
) -> None:
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    raw = json.dumps(header).encode()
    path.write_bytes(
        struct.pack("<Q", len(raw)) + raw + b"".join(t[2] for t in tensors.values())
    )


def test_bf16_weights_widen_exactly_to_f32(tmp_path: Path) -> None:
    values = np.array([1.0, -2.5, 3.140625, 1e-3], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2").tobytes()
    write_safetensors(tmp_path / "m.safetensors", {"w": ("BF16", [2, 2], bf16)})
    (tensor,) = _read_safetensors_index(tmp_path / "m.safetensors").values()
    loaded = _load(tensor)
    expected = ((values.view(np.uint32) >> 16) << 16).view(np.float32).reshape(2, 2)
    assert np.array_equal(loaded, expected)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        (
            {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]},
            "only F32, F16 and BF16",
        ),
        (
            {"dtype": "F32", "shape": [4], "data_offsets": [0, 1 << 40]},
            "outside the file",
        ),
        ({"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}, "wrong byte size"),
        ({"dtype": "F32"}, "corrupt entry"),
    ],
)
def test_a_bad_safetensors_header_is_refused(
    tmp_path: Path, entry: dict[str, Any], reason: str
) -> None:
    raw = json.dumps({"w": entry}).encode()
    (tmp_path / "m.safetensors").write_bytes(
        struct.pack("<Q", len(raw)) + raw + b"\0" * 16
    )
    with pytest.raises(BackendError, match=reason):
        _read_safetensors_index(tmp_path / "m.safetensors")


def test_a_huge_safetensors_header_length_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m.safetensors").write_bytes(struct.pack("<Q", 1 << 62) + b"{}")
    with pytest.raises(BackendError, match="corrupt safetensors header length"):
        _read_safetensors_index(tmp_path / "m.safetensors")


def test_unsupported_architectures_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["GPT2LMHeadModel"]})
    )
    with pytest.raises(
        BackendError, match="GPT2LMHeadModel models cannot be converted; supported"
    ):
        convert_hf_to_gguf(
            tmp_path, tmp_path / "out.gguf", progress=nothing, log=nothing
        )


def test_pickle_checkpoints_are_refused(tmp_path: Path) -> None:
    config = {"architectures": ["LlamaForCausalLM"], "num_hidden_layers": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04")
    with pytest.raises(BackendError, match="Only safetensors checkpoints are accepted"):
        convert_hf_to_gguf(
            tmp_path, tmp_path / "out.gguf", progress=nothing, log=nothing
        )


# ---------------------------------------------------------------- round trip


def _transformers_hf_dir(out: Path) -> Path:
    """The sample as a Hugging Face directory, made by transformers."""
    try:
        from quantjobs.backends.hf_convert import gguf_to_hf
    except ImportError:  # the other engineer's module is optional here
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = sample_path(SAMPLE)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, torch_dtype=torch.float32
        )
        model.to(torch.float16).save_pretrained(out, safe_serialization=True)
        AutoTokenizer.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name
        ).save_pretrained(out)
        (out / "tokenizer.model").unlink(missing_ok=True)
        return out
    return gguf_to_hf(sample_path(SAMPLE), out, nothing, nothing, dtype="float16")


def _hub_style_tokenizer(model_dir: Path) -> None:
    """tokenizer.json / tokenizer_config.json as the SmolLM2 repository ships them.

    transformers' GGUF export writes a lossy tokenizer (no digit splitting, a
    byte-fallback decoder); this is the original layout, rebuilt from the sample's
    own metadata, to check the converter recognises it.
    """
    from gguf import GGUFReader

    reader = GGUFReader(str(sample_path(SAMPLE)))

    def field(key: str) -> Any:
        return reader.get_field(key).contents()  # type: ignore[union-attr]

    tokens, types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type")
    added = [
        {"id": i, "content": t, "special": True, "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False}
        for i, (t, kind) in enumerate(zip(tokens, types, strict=True)) if kind == 3
    ]  # fmt: skip
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": True}  # fmt: skip
    tokenizer = {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Digits", "individual_digits": True},
                byte_level,
            ],
        },
        "post_processor": byte_level,
        "decoder": byte_level,
        "model": {
            "type": "BPE",
            "byte_fallback": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ") for m in field("tokenizer.ggml.merges")],
        },
    }
    (model_dir / "tokenizer.json").write_text(json.dumps(tokenizer))
    config = {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|im_end|>",
        "add_bos_token": False,
        "chat_template": field("tokenizer.chat_template"),
        "tokenizer_class": "GPT2Tokenizer",
    }
    (model_dir / "tokenizer_config.json").write_text(json.dumps(config))
    (model_dir / "special_tokens_map.json").unlink(missing_ok=True)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("convert")
    exported = _transformers_hf_dir(root / "hf-transformers")
    hub = root / "hf-hub"
    hub.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(exported / name, hub / name)
    _hub_style_tokenizer(hub)
    base = root / "base-F16.gguf"
    dequantize_to_f16(sample_path(SAMPLE), base, nothing, nothing)
    converted = root / "converted-F16.gguf"
    convert_hf_to_gguf(hub, converted, progress=nothing, log=nothing)
    yield {"exported": exported, "hub": hub, "base": base, "converted": converted}


def _reader(path: Path) -> Any:
    from gguf import GGUFReader

    return GGUFReader(str(path))


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
def test_a_hub_style_tokenizer_converts_to_the_samples_tokenizer(
    dirs: dict[str, Path],
) -> None:
    base, converted = _reader(dirs["base"]), _reader(dirs["converted"])
    for key in (
        "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id",
        "tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token", "tokenizer.chat_template", "llama.block_count",
        "llama.attention.head_count_kv", "llama.rope.freq_base", "llama.context_length",
        "llama.rope.dimension_count", "llama.attention.layer_norm_rms_epsilon",
        "general.file_type",
    ):  # fmt: skip
        assert converted.get_field(key).contents() == base.get_field(key).contents(), (
            key
        )
    assert converted.get_field("tokenizer.ggml.pre").contents() == "smollm"


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
def test_the_transformers_export_converts_too(
    dirs: dict[str, Path], tmp_path: Path
) -> None:
    # No digit splitting in transformers' tokenizer.json: llama.cpp's gpt2 regex.
    out = tmp_path / "exported.gguf"
    result = convert_hf_to_gguf(dirs["exported"], out, progress=nothing, log=nothing)
    assert (result.architecture, result.tokenizer_pre) == ("llama", "gpt-2")
    assert result.tensor_count == 272 and result.vocab_size == 49152
    # llama.cpp accepts the name and tokenizes with it.
    from llama_cpp import Llama

    vocab = Llama(str(out), vocab_only=True, verbose=False)
    assert vocab.tokenize(b"The 2024 report", add_bos=False)
    # ...unless told which pre-tokenizer the model really uses.
    forced = convert_hf_to_gguf(
        dirs["exported"], out, progress=nothing, log=nothing, tokenizer_pre="smollm"
    )
    assert forced.tokenizer_pre == "smollm"


@pytest.mark.slow
def test_the_backend_quantizes_a_hugging_face_source(
    dirs: dict[str, Path], tmp_path: Path
) -> None:
    stages: list[str] = []
    result = GgufBackend().quantize(
        QuantizeRequest(
            source_path=dirs["hub"],
            source_kind="hf",
            format="gguf-Q4_0",
            work_dir=tmp_path,
        ),
        lambda fraction, stage: stages.append(stage),
        nothing,
    )
    assert result.reference_path == tmp_path / "reference-F16.gguf"
    assert result.metadata["base"] == {
        "kind": "converted", "architecture": "llama", "tokenizer_pre": "smollm",
    }  # fmt: skip
    # The tied embedding gets Q6_K, which falls back to Q8_0 on 576-wide rows.
    assert result.metadata["types_histogram"] == {"F32": 61, "Q4_0": 210, "Q8_0": 1}
    assert "convert" in stages
