"""Round-to-nearest: the grid, the format grammar and the backend on a tiny Llama."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from quantjobs.backends import load_backend
from quantjobs.backends.base import BackendError, EvaluateRequest, QuantizeRequest
from quantjobs.backends.rtn import RtnBackend
from quantjobs.backends.torchq import corpus
from quantjobs.backends.torchq.checkpoint import dequantized_state_dict
from quantjobs.backends.torchq.formats import parse_format
from quantjobs.backends.torchq.quantizer import rtn_quantize

torch.set_num_threads(2)


def quiet(*_: object) -> None:
    """A progress/log callback that drops everything."""


def test_rtn_format_grammar() -> None:
    fmt = parse_format("rtn-int4-g64", "rtn")
    assert (fmt.bits, fmt.group_size, fmt.sym) == (4, 64, False)
    assert parse_format("rtn-int8-g-1", "rtn").group_size == -1
    with pytest.raises(BackendError, match="supports 4, 8-bit"):
        parse_format("rtn-int3-g64", "rtn")
    with pytest.raises(BackendError, match="rtn-int4-g64"):
        parse_format("rtn-4bit", "rtn")


@pytest.mark.parametrize(("bits", "group"), [(4, 32), (8, -1)])
def test_rtn_rounds_every_weight_to_its_nearest_level(bits: int, group: int) -> None:
    weight = torch.randn(48, 128)
    q = rtn_quantize(weight, bits, group)
    n_groups = 1 if group == -1 else 128 // group
    assert q.scales.shape == (n_groups, 48) and q.scales.dtype == torch.float16
    assert int(q.intweight.min()) >= 0 and int(q.intweight.max()) < 2**bits
    step = q.scales.float()[q.g_idx.long()].t()
    # Scales are rounded up to float16, so no weight is ever clipped.
    assert bool(((q.dequantize() - weight).abs() <= step * 0.5001).all())


def _quantize(source: Path, work: Path, fmt: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    request = QuantizeRequest(
        source_path=source, source_kind="hf", format=fmt, work_dir=work
    )
    result = load_backend("rtn").quantize(request, quiet, quiet)
    assert result.reference_path == source and result.artifact_kind == "hf"
    return result.artifact_path


def test_backend_saves_exactly_the_rounded_weights(
    tiny_model: Path, tmp_path: Path
) -> None:
    from safetensors.torch import load_file

    out = _quantize(tiny_model, tmp_path, "rtn-int4-g32")
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert qc["quant_method"] == "gptq" and qc["meta"]["quantizer"] == ["quantplan:rtn"]
    from transformers import GPTQConfig

    GPTQConfig.from_dict(qc)  # transformers' own validation accepts it
    assert (qc["bits"], qc["group_size"], qc["sym"], qc["desc_act"]) == (
        4,
        32,
        False,
        False,
    )
    source = load_file(str(tiny_model / "model.safetensors"))
    state, _ = dequantized_state_dict(out)
    name = "model.layers.1.mlp.gate_proj.weight"
    expected = rtn_quantize(source[name].float(), 4, 32).dequantize()
    assert torch.equal(state[name], expected)
    # Outside the decoder blocks nothing is quantized.
    assert torch.equal(
        state["model.embed_tokens.weight"], source["model.embed_tokens.weight"].float()
    )


def test_int8_per_channel_is_closer_to_the_reference_than_int4(
    tiny_model: Path, tmp_path: Path
) -> None:
    def kld(fmt: str) -> float:
        out = _quantize(tiny_model, tmp_path / fmt, fmt)
        result = RtnBackend().evaluate(
            EvaluateRequest(
                model_path=out,
                model_kind="hf",
                reference_path=tiny_model,
                reference_kind="hf",
                text=corpus.held_out_text()[:20_000],
                context_tokens=64,
                max_chunks=2,
                generation_tokens=4,
            ),
            quiet,
            quiet,
        )
        return result.kl_divergence

    assert 0 < kld("rtn-int8-g-1") < kld("rtn-int4-g32")


def test_it_refuses_a_group_size_the_model_cannot_take(
    tiny_model: Path, tmp_path: Path
) -> None:
    with pytest.raises(BackendError, match="group size of 32, 64, 128 or -1"):
        _quantize(tiny_model, tmp_path, "rtn-int4-g48")
