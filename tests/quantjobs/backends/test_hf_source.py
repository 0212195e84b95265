"""Checks on Hugging Face source directories, and downloads without a network."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from quantjobs.backends.base import BackendError
from quantjobs.backends.hf_source import (
    read_safetensors_header,
    validate_hf_dir,
)

REPO_ROOT = Path(__file__).resolve().parents[3]


def write_safetensors(path: Path, header: dict[str, object], data: bytes) -> None:
    """A safetensors file from a hand-written header (may be deliberately bad)."""
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def good_header() -> tuple[dict[str, object], bytes]:
    header = {
        "__metadata__": {"format": "pt"},
        "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "BF16", "shape": [4], "data_offsets": [16, 24]},
    }
    return header, bytes(24)


def make_source(tmp_path: Path, config: dict[str, object] | None = None) -> Path:
    source = tmp_path / "model"
    source.mkdir()
    cfg = {"model_type": "llama"} if config is None else config
    (source / "config.json").write_text(json.dumps(cfg))
    header, data = good_header()
    write_safetensors(source / "model.safetensors", header, data)
    return source


def test_it_accepts_a_config_plus_safetensors_directory(tmp_path: Path) -> None:
    source = validate_hf_dir(make_source(tmp_path))
    assert source.model_type == "llama"
    assert source.parameter_count == 8
    assert [p.name for p in source.weight_files] == ["model.safetensors"]


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "weights.pth"])
def test_it_refuses_pickle_weights_and_says_why(tmp_path: Path, name: str) -> None:
    source = make_source(tmp_path)
    (source / name).write_bytes(b"\x80\x04pickle")
    with pytest.raises(BackendError, match="runs any code"):
        validate_hf_dir(source)


def test_it_refuses_remote_code_in_config(tmp_path: Path) -> None:
    config = {"model_type": "llama", "auto_map": {"AutoModel": "x.Model"}}
    with pytest.raises(BackendError, match="trust_remote_code"):
        validate_hf_dir(make_source(tmp_path, config))


def test_it_refuses_an_architecture_transformers_lacks(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="does not know the architecture"):
        validate_hf_dir(make_source(tmp_path, {"model_type": "no-such-arch"}))


def test_it_requires_config_and_safetensors(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    (source / "model.safetensors").unlink()
    with pytest.raises(BackendError, match="no .safetensors"):
        validate_hf_dir(source)
    (source / "config.json").unlink()
    with pytest.raises(BackendError, match="no config.json"):
        validate_hf_dir(source)


def test_it_checks_the_shard_index(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    (source / "model.safetensors").rename(source / "model-00001-of-00002.safetensors")
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (source / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(BackendError, match="missing"):
        validate_hf_dir(source)
    index["weight_map"]["b"] = "model-00001-of-00002.safetensors"
    (source / "model.safetensors.index.json").write_text(json.dumps(index))
    assert validate_hf_dir(source).parameter_count == 8
    index["weight_map"]["c"] = "model-00001-of-00002.safetensors"
    (source / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(BackendError, match="does not hold it"):
        validate_hf_dir(source)


def test_it_refuses_index_entries_outside_the_directory(tmp_path: Path) -> None:
    source = make_source(tmp_path)
    index = {"weight_map": {"a": "../elsewhere.safetensors"}}
    (source / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(BackendError, match="invalid shard"):
        validate_hf_dir(source)


def test_header_reads_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    # Declares a 1 TB header: must be refused from the 8-byte prefix alone.
    path.write_bytes(struct.pack("<Q", 10**12) + b"{}")
    with pytest.raises(BackendError, match="header"):
        read_safetensors_header(path)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda h: h["a"].update(dtype="Q4"), "unknown dtype"),
        (lambda h: h["a"].update(data_offsets=[0, 40]), "needs"),
        (lambda h: h["b"].update(data_offsets=[16, 32], shape=[8]), "past the"),
        (lambda h: h["b"].update(data_offsets=[8, 16]), "overlapping"),
        (lambda h: h["a"].update(shape=[2, -2]), "invalid shape"),
    ],
)
def test_it_refuses_inconsistent_headers(
    tmp_path: Path, mutate: object, message: str
) -> None:
    header, data = good_header()
    assert callable(mutate)
    mutate(header)
    path = tmp_path / "bad.safetensors"
    write_safetensors(path, header, data)
    with pytest.raises(BackendError, match=message):
        read_safetensors_header(path)


def test_it_refuses_a_truncated_file(tmp_path: Path) -> None:
    header, data = good_header()
    path = tmp_path / "short.safetensors"
    write_safetensors(path, header, data[:20])
    with pytest.raises(BackendError, match="past the"):
        read_safetensors_header(path)


def _download_in_subprocess(dest: Path, **env: str) -> subprocess.CompletedProcess[str]:
    # huggingface_hub reads HF_HUB_OFFLINE / HF_ENDPOINT at import: a fresh process.
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from quantjobs.backends.base import BackendError
        from quantjobs.backends.hf_source import download_hf
        try:
            download_hf("HuggingFaceTB/SmolLM2-135M-Instruct", "main", Path({str(dest)!r}))
        except BackendError as exc:
            print("BackendError:", exc)
        """
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )


def test_download_reports_an_offline_worker(tmp_path: Path) -> None:
    done = _download_in_subprocess(tmp_path / "dl", HF_HUB_OFFLINE="1")
    assert "BackendError: Hugging Face is not reachable from this worker" in done.stdout
    assert not any((tmp_path / "dl").glob("*.safetensors"))


def test_download_reports_an_unreachable_hub(tmp_path: Path) -> None:
    # Port 9 (discard) on loopback: connection refused at once, no outside traffic.
    done = _download_in_subprocess(
        tmp_path / "dl",
        HF_HUB_OFFLINE="0",
        HF_ENDPOINT="http://127.0.0.1:9",
        HF_HUB_ETAG_TIMEOUT="2",
        HF_HUB_DOWNLOAD_TIMEOUT="2",
    )
    assert "BackendError: Hugging Face is not reachable from this worker" in done.stdout
