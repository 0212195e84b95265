"""GPTQ: packing round trips, the solver, and the backend on a tiny Llama."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from quantjobs.backends.base import BackendError, EvaluateRequest
from quantjobs.backends.gptq import GptqBackend
from quantjobs.backends.torchq import corpus
from quantjobs.backends.torchq.checkpoint import dequantized_state_dict
from quantjobs.backends.torchq.formats import apply_options, parse_format
from quantjobs.backends.torchq.gptq_algo import gptq_quantize
from quantjobs.backends.torchq.packing import (
    pack_gptq,
    pack_rows,
    unpack_gptq,
    unpack_rows,
)
from quantjobs.backends.torchq.quantizer import grid_params, rtn_quantize
from tests.helpers import RequestFactory

torch.set_num_threads(2)


def quiet(*_: object) -> None:
    """A progress/log callback that drops everything."""


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_bit_packing_round_trips_exactly(bits: int) -> None:
    gen = torch.Generator().manual_seed(bits)
    values = torch.randint(0, 2**bits, (96, 40), generator=gen, dtype=torch.int32)
    packed = pack_rows(values, bits)
    assert packed.dtype == torch.int32
    assert packed.shape == (96 * bits // 32, 40)
    assert torch.equal(unpack_rows(packed, bits), values)


def test_four_bit_packing_is_the_gptq_nibble_order() -> None:
    values = torch.arange(8, dtype=torch.int32)[:, None]  # one column 0..7
    packed = pack_rows(values, 4)
    assert int(packed[0, 0]) == 0x76543210  # value j in bits 4j..4j+3


@pytest.mark.parametrize(("bits", "group"), [(4, 32), (3, 32), (8, -1), (2, 64)])
def test_gptq_layout_round_trips_quantized_values(bits: int, group: int) -> None:
    weight = torch.randn(64, 128)
    q = rtn_quantize(weight, bits, group, sym=False)
    qweight, qzeros = pack_gptq(q.intweight, q.zeros, bits)
    assert qweight.shape == (128 * bits // 32, 64)
    assert qzeros.shape == (q.zeros.shape[0], 64 * bits // 32)
    intweight, zeros = unpack_gptq(qweight, qzeros, bits)
    assert torch.equal(intweight, q.intweight)
    assert torch.equal(zeros, q.zeros)


def test_asymmetric_zero_points_stay_storable() -> None:
    # All-positive rows would want a zero point of 0, which the GPTQ layout's
    # "zero - 1" storage reads back as 2**bits in vLLM/exllama kernels.
    rows = torch.rand(16, 64) + 0.1
    scale, zero = grid_params(rows, 4, sym=False)
    assert bool((zero >= 1).all())
    q = torch.clamp(torch.round(rows / scale[:, None]) + zero[:, None], 0, 15)
    error = ((q - zero[:, None]) * scale[:, None] - rows).abs()
    assert bool((error <= scale[:, None] / 2 + 1e-6).all())


def _correlated_inputs(n: int, dim: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(dim, dim, generator=gen) / dim**0.5
    scales = torch.logspace(-1, 1, dim)
    return (torch.randn(n, dim, generator=gen) * scales) @ mix


@pytest.mark.parametrize("desc_act", [False, True])
def test_gptq_beats_rtn_on_layer_output_error(desc_act: bool) -> None:
    x = _correlated_inputs(2048, 128, seed=1)
    weight = torch.randn(64, 128, generator=torch.Generator().manual_seed(2))
    hessian = 2 * x.t() @ x / x.shape[0]
    q, stats = gptq_quantize(weight, hessian, 4, 32, sym=True, desc_act=desc_act)
    rtn = rtn_quantize(weight, 4, 32, sym=True)
    ref = x @ weight.t()
    gptq_err = (x @ q.dequantize().t() - ref).pow(2).mean()
    rtn_err = (x @ rtn.dequantize().t() - ref).pow(2).mean()
    assert gptq_err < 0.7 * rtn_err
    assert stats.loss > 0
    assert int(q.intweight.min()) >= 0 and int(q.intweight.max()) <= 15
    counts = torch.bincount(q.g_idx.long())
    assert counts.tolist() == [32] * 4  # every group has group_size columns
    if not desc_act:
        assert torch.equal(q.g_idx, torch.arange(128, dtype=torch.int32) // 32)


def test_act_order_packs_and_unpacks_through_g_idx() -> None:
    x = _correlated_inputs(1024, 64, seed=3)
    weight = torch.randn(32, 64)
    q, _ = gptq_quantize(weight, 2 * x.t() @ x / 1024, 4, 16, sym=False, desc_act=True)
    qweight, qzeros = pack_gptq(q.intweight, q.zeros, 4)
    from quantjobs.backends.torchq.packing import dequantize_gptq

    unpacked = dequantize_gptq(qweight, qzeros, q.scales, q.g_idx, 4)
    assert torch.equal(unpacked, q.dequantize())


def test_gptq_format_grammar() -> None:
    fmt = parse_format("gptq-4bit-g128", "gptq")
    assert (fmt.bits, fmt.group_size, fmt.sym, fmt.desc_act) == (4, 128, True, False)
    fmt = parse_format("gptq-3bit-g-1-act-asym", "gptq")
    assert (fmt.bits, fmt.group_size, fmt.sym, fmt.desc_act) == (3, -1, False, True)
    assert apply_options(fmt, {"sym": True}).sym
    with pytest.raises(BackendError, match="2, 3, 4, 8-bit"):
        parse_format("gptq-5bit-g128", "gptq")
    with pytest.raises(BackendError, match="not a GPTQ format"):
        parse_format("awq-4bit-g128", "gptq")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_it_refuses_cpu_unless_allowed(
    tiny_model: Path, tmp_path: Path, calibrated_request: RequestFactory
) -> None:
    request = calibrated_request(tiny_model, tmp_path, "gptq-4bit-g32", allow_cpu=False)
    with pytest.raises(BackendError, match="allow_cpu"):
        GptqBackend().quantize(request, quiet, quiet)


def test_it_refuses_models_over_the_cpu_size_limit(
    tiny_model: Path, tmp_path: Path, calibrated_request: RequestFactory
) -> None:
    if torch.cuda.is_available():
        pytest.skip("the CPU size limit applies to CPU workers")
    request = calibrated_request(
        tiny_model, tmp_path, "gptq-4bit-g32", max_cpu_params=1000
    )
    with pytest.raises(BackendError, match="limited to"):
        GptqBackend().quantize(request, quiet, quiet)


def test_it_names_the_group_sizes_a_model_allows(
    tiny_model: Path, tmp_path: Path, calibrated_request: RequestFactory
) -> None:
    request = calibrated_request(tiny_model, tmp_path, "gptq-4bit-g96")
    with pytest.raises(BackendError, match="group size of 32, 64, 128 or -1"):
        GptqBackend().quantize(request, quiet, quiet)


@pytest.mark.parametrize("fmt", ["gptq-4bit-g32", "gptq-3bit-g64-act-asym"])
def test_backend_writes_a_standard_gptq_checkpoint(
    tiny_model: Path, tmp_path: Path, fmt: str, calibrated_request: RequestFactory
) -> None:
    stages: list[str] = []
    result = GptqBackend().quantize(
        calibrated_request(tiny_model, tmp_path / "work", fmt),
        lambda fraction, stage: stages.append(stage),
        quiet,
    )
    out = result.artifact_path
    assert out.parent == tmp_path / "work" and out.is_dir()
    assert not list((tmp_path / "work").glob(".*partial"))
    config = json.loads((out / "config.json").read_text())
    qc = config["quantization_config"]
    parsed = parse_format(fmt, "gptq")
    assert qc["quant_method"] == "gptq" and qc["checkpoint_format"] == "gptq"
    assert (qc["bits"], qc["group_size"]) == (parsed.bits, parsed.group_size)
    assert (qc["sym"], qc["desc_act"]) == (parsed.sym, parsed.desc_act)
    from transformers import GPTQConfig

    GPTQConfig.from_dict(qc)  # transformers' own validation accepts it
    assert (out / "tokenizer.json").is_file()
    assert any("block 2/2" in s for s in stages)

    from safetensors.torch import load_file

    tensors = load_file(str(out / "model.safetensors"))
    bits = parsed.bits
    assert tensors["model.layers.0.mlp.down_proj.qweight"].shape == (
        256 * bits // 32,
        128,
    )
    assert tensors["model.layers.0.mlp.down_proj.scales"].dtype == torch.float16
    assert "lm_head.weight" not in tensors  # tied to the embedding
    if parsed.desc_act:
        g_idx = tensors["model.layers.0.self_attn.q_proj.g_idx"]
        assert not torch.equal(g_idx, torch.arange(128, dtype=torch.int32) // 64)

    state, method = dequantized_state_dict(out)
    assert method == "gptq"
    assert state["model.layers.1.self_attn.k_proj.weight"].shape == (64, 128)

    evaluation = GptqBackend().evaluate(
        EvaluateRequest(
            model_path=out,
            model_kind="hf",
            reference_path=result.reference_path,
            reference_kind="hf",
            text=corpus.held_out_text()[:20_000],
            context_tokens=64,
            max_chunks=3,
            generation_tokens=4,
        ),
        quiet,
        quiet,
    )
    assert evaluation.kl_divergence > 0
    assert evaluation.tokens_evaluated == 3 * 31
