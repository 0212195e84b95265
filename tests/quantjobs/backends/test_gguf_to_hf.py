"""GGUF -> Hugging Face conversion of the real sample model."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from quantjobs.backends.base import BackendError, QuantizeRequest, sha256_file
from quantjobs.backends.gguf_to_hf import convert_cached, gguf_to_hf
from quantjobs.backends.hf_source import validate_hf_dir
from quantjobs.backends.rtn import RtnBackend
from tests.gguf_tiny import sample_gguf_path

torch.set_num_threads(2)
# Shared with the other sample tests: the conversion is reused, keyed by content.
SAMPLE_CACHE = Path(tempfile.gettempdir()) / "quantplan-tests" / "hf-convert"


def quiet(*_: object) -> None:
    """A progress/log callback that drops everything."""


def test_it_refuses_files_that_are_not_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(BackendError, match="not a GGUF file"):
        gguf_to_hf(fake, tmp_path / "out", quiet, quiet)


def test_it_refuses_to_overwrite_a_directory(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(BackendError, match="overwrite"):
        gguf_to_hf(sample_gguf_path(), tmp_path / "out", quiet, quiet)


@pytest.mark.slow
def test_a_backend_converts_the_sample_deterministically(tmp_path: Path) -> None:
    cached = convert_cached(sample_gguf_path(), SAMPLE_CACHE, quiet, quiet)
    # "Convert the sample to HF" as a job does it: a GGUF source handed to a
    # torch backend is converted inside the job's work dir and becomes the
    # reference the artifact is measured against.
    result = RtnBackend().quantize(
        QuantizeRequest(
            source_path=sample_gguf_path(),
            source_kind="gguf",
            format="rtn-int8-g-1",
            work_dir=tmp_path,
        ),
        quiet,
        quiet,
    )
    fresh = result.reference_path
    assert result.reference_kind == "hf" and tmp_path in fresh.parents
    names = sorted(p.name for p in fresh.iterdir())
    assert names == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    for name in names:  # byte-identical to the earlier conversion
        assert sha256_file(fresh / name) == sha256_file(cached / name), name
    source = validate_hf_dir(fresh)
    assert source.model_type == "llama"
    assert 134e6 < source.parameter_count < 136e6
    config = json.loads((fresh / "config.json").read_text())
    assert config["torch_dtype"] == "float16" and "auto_map" not in config
    assert (result.artifact_path / "model.safetensors").is_file()


@pytest.mark.slow
def test_converted_model_matches_llama_cpp_on_the_gguf() -> None:
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    converted = convert_cached(sample_gguf_path(), SAMPLE_CACHE, quiet, quiet)
    text = "The assert statement is a convenient way to insert debugging assertions"
    tokenizer = AutoTokenizer.from_pretrained(converted)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]

    llm = Llama(
        str(sample_gguf_path()), n_ctx=128, logits_all=True, verbose=False, n_threads=2
    )
    # Same tokens as llama.cpp, which follows the GGUF's metadata (no BOS).
    assert llm.tokenize(text.encode(), add_bos=False) == ids
    llm.eval(ids)
    cpp_logits = np.array(llm.scores[: len(ids)])

    model = AutoModelForCausalLM.from_pretrained(converted, torch_dtype=torch.float32)
    with torch.no_grad():
        hf_logits = model(torch.tensor([ids])).logits[0].numpy()
    agree = (hf_logits.argmax(-1) == cpp_logits.argmax(-1)).mean()
    assert agree >= 0.9
    corr = np.corrcoef(hf_logits.ravel(), cpp_logits.ravel())[0, 1]
    assert corr > 0.99
