"""Plans from a GGUF file: ``manage.py plan``, the plans API (an upload or a local path).

Real files (a tiny Qwen2 written as llama.cpp's converter writes it, see
tests/gguf_tiny.py), read by the real sandboxed inspector.
"""

from __future__ import annotations

import json
import shutil
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from tests.gguf_tiny import TINY_QWEN2, write_tiny_gguf

pytestmark = pytest.mark.django_db

CPU_PLAN = {
    "gpu": "cpu-generic-ddr5",
    "engine": "llama.cpp",
    "formats": ["gguf-F16", "gguf-Q8_0", "gguf-Q4_K_M"],
    "context": 2048,
}


def _by_format(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["format"]: r for r in body["results"]}


def test_the_cli_plans_a_gguf_from_its_metadata(tiny_ggufs: dict[str, Path]) -> None:
    path = tiny_ggufs["qwen2"]
    out = StringIO()
    call_command(
        "plan",
        "--model",
        str(path),
        "--gpu",
        "cpu-generic-ddr5",
        "--engine",
        "llama.cpp",
        "--format",
        "gguf-F16",
        "--format",
        "gguf-Q8_0",
        "--json",
        stdout=out,
    )
    rows = {r["format"]: r for r in json.loads(out.getvalue())}
    assert rows["gguf-F16"]["artifact_bytes"] == path.stat().st_size  # as stored
    assert 0 < rows["gguf-Q8_0"]["artifact_bytes"] < path.stat().st_size
    for row in rows.values():
        assert row["kv_cache_bytes"] > 0 and row["decode_tokens_per_s"] > 0
        assert row["total_bytes_per_gpu"] > row["weights_bytes"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("truncate", "ends past the end of the"),
        ("missing", "no such file"),
        ("split", "big-00002-of-00002.gguf is missing"),
    ],
)
def test_the_cli_says_what_is_wrong_with_a_bad_gguf(
    tiny_ggufs: dict[str, Path], tmp_path: Path, damage: str, message: str
) -> None:
    path = tmp_path / "bad.gguf"
    if damage == "truncate":
        path.write_bytes(tiny_ggufs["qwen2"].read_bytes()[:-4096])
    elif damage == "split":
        parts = write_tiny_gguf(
            tmp_path / "big.gguf",
            TINY_QWEN2,
            split_parts=2,
            vocab_without_tokenizer=256,
        )
        parts[1].unlink()
        path = parts[0]
    with pytest.raises(CommandError, match=message):
        call_command("plan", "--model", str(path), "--gpu", "l4", stdout=StringIO())


def test_the_api_plans_a_gguf_under_the_local_model_folders(
    api: Any, tiny_ggufs: dict[str, Path], local_models: Path
) -> None:
    shutil.copy(tiny_ggufs["gemma2"], local_models / "gemma.gguf")
    response = api.post(
        "/api/v1/plans/", {**CPU_PLAN, "path": "gemma.gguf"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model"] == "Tiny Gemma2 Test"
    rows = _by_format(body)
    assert rows["gguf-F16"]["artifact_bytes"] == tiny_ggufs["gemma2"].stat().st_size
    assert rows["gguf-Q4_K_M"]["artifact_bytes"] < rows["gguf-Q8_0"]["artifact_bytes"]
    # "model" naming a .gguf is the same request.
    again = api.post(
        "/api/v1/plans/",
        {**CPU_PLAN, "model": str(local_models / "gemma.gguf")},
        format="json",
    )
    assert again.status_code == 200, again.content
    assert _by_format(again.json()) == rows


@pytest.mark.parametrize(
    "path", ["/etc/passwd.gguf", "../../outside.gguf", "/tmp/x/../../etc/a.gguf"]
)
def test_the_api_refuses_a_path_outside_the_local_model_folders(
    api: Any, local_models: Path, path: str
) -> None:
    response = api.post("/api/v1/plans/", {**CPU_PLAN, "path": path}, format="json")
    assert response.status_code == 400, response.content
    assert "local models must live under" in response.json()["path"][0]


def test_the_api_says_what_is_wrong_with_a_bad_gguf_in_the_folders(
    api: Any, tiny_ggufs: dict[str, Path], local_models: Path
) -> None:
    (local_models / "cut.gguf").write_bytes(tiny_ggufs["qwen2"].read_bytes()[:-4096])
    response = api.post(
        "/api/v1/plans/", {**CPU_PLAN, "path": "cut.gguf"}, format="json"
    )
    assert response.status_code == 400
    assert "ends past the end of the" in response.json()["path"][0]
    parts = write_tiny_gguf(
        local_models / "big.gguf",
        TINY_QWEN2,
        split_parts=3,
        vocab_without_tokenizer=256,
    )
    parts[2].unlink()
    response = api.post(
        "/api/v1/plans/", {**CPU_PLAN, "path": parts[0].name}, format="json"
    )
    assert response.status_code == 400
    assert "big-00003-of-00003.gguf is missing" in response.json()["path"][0]
    response = api.post(
        "/api/v1/plans/", {**CPU_PLAN, "path": "nothing.gguf"}, format="json"
    )
    assert response.status_code == 400
    assert "no such file" in response.json()["path"][0]


def test_an_upload_is_named_after_its_model_and_planned_from_its_metadata(
    api: Any,
    other_api: Any,
    tiny_ggufs: dict[str, Path],
    clean_media: Path,
    redis_url: str,
) -> None:
    from quantjobs.uploads import model_upload_check

    data = tiny_ggufs["qwen2"].read_bytes()
    upload = api.post(
        "/api/v1/uploads/",
        {"file": SimpleUploadedFile("model-v2-final.gguf", data)},
        format="multipart",
    )
    assert upload.status_code == 201, upload.content
    checking = api.post(
        "/api/v1/plans/", {**CPU_PLAN, "upload": upload.json()["id"]}, format="json"
    )
    assert checking.status_code == 400
    assert "still being checked" in checking.json()["upload"][0]
    model_upload_check(upload_id=upload.json()["id"])  # what the worker's task runs
    body = api.get(f"/api/v1/uploads/{upload.json()['id']}/").json()
    assert body["status"] == "ready", body
    assert body["name"] == "Tiny Qwen2 Test"  # general.name, not the file or a UUID
    assert body["spec_error"] is None
    response = api.post(
        "/api/v1/plans/",
        {**CPU_PLAN, "upload": body["id"], "save": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    rows = _by_format(response.json())
    assert rows["gguf-F16"]["artifact_bytes"] == len(data)
    saved = api.get(f"/api/v1/plans/{response.json()['id']}/").json()
    assert saved["model_id"] == "Tiny Qwen2 Test"
    assert saved["name"].startswith("Tiny Qwen2 Test on ")
    # Another user cannot plan it, and a bad id says what to do.
    for client, ref in ((other_api, body["id"]), (api, "not-an-id")):
        refused = client.post(
            "/api/v1/plans/", {**CPU_PLAN, "upload": ref}, format="json"
        )
        assert refused.status_code == 400
        assert "No such upload" in refused.json()["upload"][0]


def test_the_api_refuses_two_model_sources_at_once(api: Any) -> None:
    response = api.post(
        "/api/v1/plans/",
        {**CPU_PLAN, "path": "a.gguf", "config": {"model_type": "llama"}},
        format="json",
    )
    assert response.status_code == 400
    assert "only one of" in response.json()["model"][0]


@pytest.mark.parametrize(
    "path", ["bad\x00name.gguf", "~nobody-here/x.gguf", "a" * 1000]
)
def test_odd_paths_are_a_400_not_a_500(api: Any, local_models: Path, path: str) -> None:
    response = api.post("/api/v1/plans/", {**CPU_PLAN, "path": path}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["path"]
