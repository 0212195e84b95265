"""Fine-tuning memory and time: full, LoRA, QLoRA; held against a real torch step."""

from __future__ import annotations

import pytest

from planner.engine import get_gpu, get_model
from planner.engine.finetune import (
    FinetuneError,
    FinetuneRequest,
    estimate_finetune,
    lora_parameters,
)


def _est(**kw):  # type: ignore[no-untyped-def]
    args = {"model": get_model("llama-3.1-8b").spec, "gpu": get_gpu("a100-80gb")}
    args.update(kw)
    return estimate_finetune(FinetuneRequest(**args))


def test_full_fine_tuning_costs_about_16_bytes_per_parameter_before_activations() -> (
    None
):
    est = _est(method="full", seq_len=512)
    per_param = (est.weights_bytes + est.gradients_bytes + est.optimizer_bytes) / (
        est.parameters
    )
    assert per_param == pytest.approx(18, abs=0.01)  # 6 weights + 4 grads + 8 AdamW
    assert not est.fits  # 8B x 18 bytes = 144 GB > 80 GB
    assert "QLoRA" in est.reasons[0]


def test_lora_and_qlora_shrink_the_frozen_base() -> None:
    lora, qlora = _est(method="lora"), _est(method="qlora")
    assert lora.fits and qlora.fits
    assert qlora.weights_bytes < 0.45 * lora.weights_bytes
    assert lora.trainable_parameters == qlora.trainable_parameters
    assert lora.trainable_parameters < 0.01 * lora.parameters


def test_lora_parameters_match_rank_times_in_plus_out() -> None:
    spec = get_model("llama-3.1-8b").spec
    # q: 4096->4096, v: 4096->1024, 32 layers.
    assert lora_parameters(spec, 8, ["q_proj", "v_proj"]) == 32 * 8 * (
        (4096 + 4096) + (4096 + 1024)
    )


def test_checkpointing_trades_activation_memory_for_time() -> None:
    on = _est(gradient_checkpointing=True, seq_len=4096)
    off = _est(gradient_checkpointing=False, seq_len=4096)
    assert on.activations_bytes < off.activations_bytes / 5
    assert on.time_per_epoch_s > off.time_per_epoch_s


def test_eight_bit_adamw_quarters_the_optimizer_states() -> None:
    assert _est(method="full", optimizer="adamw-8bit").optimizer_bytes * 4 == (
        _est(method="full").optimizer_bytes
    )


def test_more_gpus_finish_an_epoch_sooner_and_cost_is_stated() -> None:
    one = _est(usd_per_gpu_hour=2.0)
    four = _est(gpus=4, usd_per_gpu_hour=2.0)
    assert four.time_per_epoch_s == pytest.approx(one.time_per_epoch_s / 4)
    assert one.usd_per_epoch == pytest.approx(four.usd_per_epoch)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"method": "dora"}, "method"),
        ({"seq_len": 10**6}, "window"),
        ({"target_modules": ["qkv"]}, "target_modules"),
        ({"micro_batch": 0}, "micro_batch"),
        ({"optimizer": "sgd"}, "optimizer"),
    ],
)
def test_bad_input_says_what_to_change(kw: dict[str, object], message: str) -> None:
    with pytest.raises(FinetuneError, match=message):
        _est(**kw)


@pytest.mark.slow
@pytest.mark.parametrize(
    "seq_len,micro_batch,checkpointing", [(512, 2, False), (1024, 1, True)]
)
def test_a_real_torch_lora_step_peaks_within_10_percent_of_the_projection(
    seq_len: int, micro_batch: int, checkpointing: bool
) -> None:
    from bench.finetune_memory import measure

    r = measure(seq_len=seq_len, micro_batch=micro_batch, checkpointing=checkpointing)
    assert r["measured_trainable"] == r["projected_trainable"]
    assert abs(float(r["error_pct"])) <= 10, r  # type: ignore[arg-type]
