"""A tiny random Llama checkpoint, for fast tests of the torch backends.

Dimensions are multiples of 64 so that autoawq's clipping search (which splits
output channels in batches of 64) and every group size up to 64 apply. Weights
are random, so quality numbers on it mean nothing; packing, saving, loading and
the evaluation arithmetic are exercised for real.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from quantjobs.backends.torchq import corpus


def build_tiny_llama(
    out_dir: Path,
    seed: int = 0,
    hidden_size: int = 128,
    intermediate_size: int = 256,
    num_layers: int = 2,
    vocab_size: int = 512,
) -> Path:
    """Write a random ``LlamaForCausalLM`` + a trained byte-level BPE tokenizer."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    # Untyped library classes: go through Any rather than ignore each call.
    hf: Any = importlib.import_module("transformers")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([corpus.calibration_text()[:200_000]], trainer=trainer)
    tokenizer = hf.PreTrainedTokenizerFast(
        tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )
    tokenizer.save_pretrained(out_dir)

    config = hf.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype="float16",
    )
    torch.manual_seed(seed)
    model = hf.LlamaForCausalLM(config).to(torch.float16).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir
