"""The self-test backend: steps, progress, a checksummed text artifact, neutral metrics."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from quantjobs.backends import load_backend
from quantjobs.backends.base import BackendError, EvaluateRequest, QuantizeRequest
from quantjobs.backends.selftest import SelftestBackend


def run(tmp_path: Path, **options: object) -> tuple[Path, list[tuple[float, str]]]:
    progress: list[tuple[float, str]] = []
    result = SelftestBackend().quantize(
        QuantizeRequest(
            source_path=tmp_path,
            source_kind="gguf",
            format="selftest",
            work_dir=tmp_path,
            options=dict(options),
        ),
        lambda fraction, stage: progress.append((fraction, stage)),
        lambda line: None,
    )
    assert result.format == "selftest"
    return result.artifact_path, progress


def evaluate(path: Path) -> object:
    return SelftestBackend().evaluate(
        EvaluateRequest(
            model_path=path,
            model_kind="gguf",
            reference_path=path,
            reference_kind="gguf",
            text="",
        ),
        lambda fraction, stage: None,
        lambda line: None,
    )


def test_the_registry_knows_the_selftest_backend() -> None:
    backend = load_backend("selftest")
    assert backend.name == "selftest" and backend.queue == "cpu"


def test_it_walks_the_steps_and_writes_a_checksummed_artifact(tmp_path: Path) -> None:
    path, progress = run(tmp_path, steps=3, step_s=0)
    assert [stage for _, stage in progress] == [
        "Step 1 of 3", "Step 2 of 3", "Step 3 of 3", "Artifact written",
    ]  # fmt: skip
    assert progress[-1][0] == 1.0
    assert path.suffix == ".txt" and path.parent == tmp_path
    body, checksum = path.read_bytes().rstrip(b"\n").rsplit(b"\n", 1)
    assert (
        checksum
        == b"sha256-of-above " + hashlib.sha256(body + b"\n").hexdigest().encode()
    )
    assert [p.name for p in tmp_path.iterdir()] == ["selftest.txt"]  # no .partial


def test_the_defaults_are_five_steps(tmp_path: Path) -> None:
    _, progress = run(tmp_path, step_s=0)
    assert len(progress) == 6


def test_evaluate_reports_neutral_numbers_for_an_intact_artifact(
    tmp_path: Path,
) -> None:
    path, _ = run(tmp_path, steps=1, step_s=0)
    measured = evaluate(path)
    assert measured.perplexity == measured.base_perplexity == 1.0  # type: ignore[attr-defined]
    assert measured.kl_divergence == 0.0  # type: ignore[attr-defined]
    assert measured.top1_agreement == 1.0  # type: ignore[attr-defined]


def test_evaluate_refuses_a_damaged_artifact(tmp_path: Path) -> None:
    path, _ = run(tmp_path, steps=1, step_s=0)
    path.write_bytes(path.read_bytes().replace(b"self-test", b"self-tost"))
    with pytest.raises(BackendError, match="fails its checksum"):
        evaluate(path)
    with pytest.raises(BackendError, match="cannot read the artifact"):
        evaluate(tmp_path / "missing.txt")


@pytest.mark.parametrize("options", [{"steps": 0}, {"steps": 2000}, {"step_s": -1}])
def test_out_of_range_options_are_refused(
    tmp_path: Path, options: dict[str, object]
) -> None:
    with pytest.raises(BackendError, match="steps must be 1-1000 and step_s 0-60"):
        run(tmp_path, **options)


def test_a_requested_failure_is_reported_as_is(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="^boom$"):
        run(tmp_path, fail="boom")
