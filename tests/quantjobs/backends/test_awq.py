"""AWQ: our GEMM (un)packing against autoawq's, the CPU fix, the backend."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from quantjobs.backends.awq import AwqBackend, quantizer_class
from quantjobs.backends.base import BackendError, EvaluateRequest
from quantjobs.backends.torchq import corpus
from quantjobs.backends.torchq.checkpoint import dequantized_state_dict
from quantjobs.backends.torchq.formats import parse_format
from quantjobs.backends.torchq.packing import dequantize_awq, pack_awq, unpack_awq
from tests.helpers import RequestFactory

torch.set_num_threads(2)


def quiet(*_: object) -> None:
    """A progress/log callback that drops everything."""


def _autoawq_linear(weight: torch.Tensor, group: int) -> Any:
    """Pack ``weight`` with autoawq's own quantizer and GEMM module."""
    from awq.modules.linear.gemm import WQLinear_GEMM
    from awq.quantize.quantizer import AwqQuantizer

    quantizer = object.__new__(AwqQuantizer)
    quantizer.w_bit, quantizer.group_size, quantizer.zero_point = 4, group, True
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False).half()
    fake_q, scales, zeros = quantizer.pseudo_quantize_tensor(weight.half())
    linear.weight.data = fake_q
    packed = WQLinear_GEMM.from_linear(
        linear, 4, group, scales=scales.t().contiguous(), zeros=zeros.t().contiguous()
    )
    return packed, fake_q


def test_our_gemm_unpacking_matches_autoawq() -> None:
    from awq.utils.packing_utils import dequantize_gemm

    torch.manual_seed(0)
    packed, fake_q = _autoawq_linear(torch.randn(64, 128) * 0.05, group=32)
    ours = dequantize_awq(packed.qweight, packed.qzeros, packed.scales, 32)
    theirs = dequantize_gemm(packed.qweight, packed.qzeros, packed.scales, 4, 32)
    # autoawq multiplies in float16; we keep the exact float32 product.
    assert torch.equal(ours.half(), theirs.t())
    assert torch.allclose(ours, fake_q.float(), atol=1e-3)


def test_our_gemm_packing_matches_autoawq() -> None:
    torch.manual_seed(1)
    packed, _ = _autoawq_linear(torch.randn(64, 128) * 0.05, group=64)
    intweight, zeros = unpack_awq(packed.qweight, packed.qzeros)
    assert int(intweight.max()) <= 15 and int(intweight.min()) >= 0
    qweight, qzeros = pack_awq(intweight, zeros)
    assert torch.equal(qweight, packed.qweight)
    assert torch.equal(qzeros, packed.qzeros)


def _bare_quantizer(cls: type) -> Any:
    quantizer = object.__new__(cls)
    quantizer.w_bit, quantizer.group_size, quantizer.zero_point = 4, 32, True
    quantizer.duo_scaling = True
    quantizer.n_parallel_calib_samples = None
    quantizer.max_chunk_memory = 1024**3
    return quantizer


def _scale_search(cls: type) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(2)
    linear = nn.Linear(64, 64, bias=False)
    before = linear.weight.detach().clone()
    x = torch.randn(1, 32, 64) * torch.logspace(-1, 1, 64)
    with torch.no_grad():
        reference = linear(x)
        best = _bare_quantizer(cls)._compute_best_scale(
            x,
            linear.weight.abs().mean(0),
            x.abs().mean((0, 1)),
            linear,
            [linear],
            reference,
        )
    return before, linear.weight.detach().clone(), best


def test_upstream_scale_search_corrupts_weights_on_cpu() -> None:
    from awq.quantize.quantizer import AwqQuantizer

    before, after, _ = _scale_search(AwqQuantizer)
    # The bug our subclass works around (autoawq 0.2.9): if this starts failing,
    # upstream fixed it and the CPU patch in awq.py can go.
    assert not torch.equal(before, after)


def test_patched_scale_search_restores_weights_on_cpu() -> None:
    before, after, best = _scale_search(quantizer_class())
    assert torch.equal(before, after)
    assert best.shape == (64,) and bool(torch.isfinite(best).all())


def test_awq_format_grammar() -> None:
    fmt = parse_format("awq-4bit-g64", "awq")
    assert (fmt.bits, fmt.group_size, fmt.sym) == (4, 64, False)
    with pytest.raises(BackendError, match="supports 4-bit"):
        parse_format("awq-8bit-g64", "awq")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_it_refuses_cpu_unless_allowed(
    tiny_model: Path, tmp_path: Path, calibrated_request: RequestFactory
) -> None:
    request = calibrated_request(tiny_model, tmp_path, "awq-4bit-g32", allow_cpu=False)
    with pytest.raises(BackendError, match="allow_cpu"):
        AwqBackend().quantize(request, quiet, quiet)


def test_it_refuses_a_group_size_the_model_cannot_take(
    tiny_model: Path, tmp_path: Path, calibrated_request: RequestFactory
) -> None:
    request = calibrated_request(tiny_model, tmp_path, "awq-4bit-g96")
    with pytest.raises(BackendError, match="does not divide"):
        AwqBackend().quantize(request, quiet, quiet)


def test_backend_writes_a_gemm_checkpoint_from_our_text(
    tiny_model: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    calibrated_request: RequestFactory,
) -> None:
    import awq.utils.calib_data as calib_data

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("autoawq tried to load a calibration data set")

    monkeypatch.setattr(calib_data, "load_dataset", no_download)
    stages: list[str] = []
    result = AwqBackend().quantize(
        calibrated_request(tiny_model, tmp_path / "work", "awq-4bit-g32"),
        lambda fraction, stage: stages.append(stage),
        quiet,
    )
    out = result.artifact_path
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"] == {
        "quant_method": "awq",
        "zero_point": True,
        "group_size": 32,
        "bits": 4,
        "version": "gemm",
        "modules_to_not_convert": None,
    }
    assert config["torch_dtype"] == "float16"
    from transformers import AwqConfig

    AwqConfig.from_dict(config["quantization_config"])  # transformers accepts it
    source_gen = json.loads((tiny_model / "generation_config.json").read_text())
    assert json.loads((out / "generation_config.json").read_text()) == source_gen
    assert any(stage == "awq: block 2/2" for stage in stages)
    assert result.metadata["cpu_scale_fix"] is True

    from safetensors.torch import load_file

    tensors = load_file(str(out / "model.safetensors"))
    assert tensors["model.layers.0.mlp.down_proj.qweight"].shape == (256, 16)
    assert tensors["model.layers.0.mlp.down_proj.qzeros"].shape == (8, 16)
    assert tensors["model.layers.0.mlp.down_proj.scales"].shape == (8, 128)
    state, method = dequantized_state_dict(out)
    assert method == "awq"
    assert state["model.layers.0.mlp.down_proj.weight"].shape == (128, 256)

    evaluation = AwqBackend().evaluate(
        EvaluateRequest(
            model_path=out,
            model_kind="hf",
            reference_path=result.reference_path,
            reference_kind="hf",
            text=corpus.held_out_text()[:20_000],
            context_tokens=64,
            max_chunks=2,
            generation_tokens=4,
        ),
        quiet,
        quiet,
    )
    assert evaluation.kl_divergence > 0
    assert 0 <= evaluation.top1_agreement <= 1
