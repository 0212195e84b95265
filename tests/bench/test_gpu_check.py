"""bench/gpu_check.py: the prepared GPU script, exercised without a GPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.gpu_check import cuda_server_build_steps, main


def test_dry_run_plans_the_serving_check_for_the_named_gpu_without_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--dry-run", "--serving-only", "--gpu-name", "NVIDIA H200"]) == 0
    out = capsys.readouterr().out
    assert "catalog h200" in out.lower()
    assert "AWQ" not in out  # --serving-only
    servers = [line for line in out.splitlines() if "-np " in line]
    assert len(servers) == 4 and all("-ngl 999" in line for line in servers)
    # The model's figures for that GPU, one line per slot count.
    assert out.count("model, ") == 4


def test_dry_run_of_the_whole_check_names_every_step(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--dry-run", "--slots", "1,2"]) == 0
    out = capsys.readouterr().out
    assert "AWQ int4 g64 on CUDA" in out and "llama-server (CUDA)" in out
    assert out.count("model, ") == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--serving-only", "--no-serving"], "exclude each other"),
        (["--slots", "0"], "--slots must list"),
        (["--output", "1"], "--output must be between"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_without_cuda_it_stops_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    if torch.cuda.is_available():  # pragma: no cover - only on a GPU machine
        pytest.skip("this machine has CUDA: the real check runs instead")
    out = tmp_path / "measurements.md"
    assert main(["--out", str(out), "--serving-only"]) == 2
    assert "No CUDA device" in capsys.readouterr().err
    assert not out.exists()


def test_the_cuda_server_is_built_for_the_gpus_architecture(tmp_path: Path) -> None:
    configure, build = cuda_server_build_steps(tmp_path / "src", tmp_path / "b", "90")
    assert "-DGGML_CUDA=ON" in configure
    assert "-DCMAKE_CUDA_ARCHITECTURES=90" in configure
    assert "-DLLAMA_BUILD_SERVER=ON" in configure
    assert build[-3:-1] == ["llama-server", "-j"]


def test_the_cuda_and_the_cpu_tool_builds_share_one_list_of_cmake_flags(
    tmp_path: Path,
) -> None:
    from quantjobs.backends.gguf.llama_cpp_source import TOOL_CMAKE_FLAGS
    from tests import llama_tools

    configure, _ = cuda_server_build_steps(tmp_path / "src", tmp_path / "b", "90")
    flags = configure[5:]
    assert flags == [
        "-DGGML_CUDA=ON",
        *TOOL_CMAKE_FLAGS,
        "-DCMAKE_CUDA_ARCHITECTURES=90",
    ]
    assert llama_tools._CMAKE_FLAGS == ("-DGGML_NATIVE=OFF", *TOOL_CMAKE_FLAGS)
