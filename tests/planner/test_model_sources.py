"""Uploads and local model files reach the planner through readers that quantjobs
registers at start-up; the planner itself never imports quantjobs."""

from __future__ import annotations

import pytest


def test_quantjobs_registers_its_readers_when_django_starts() -> None:
    from planner.model_sources import model_sources
    from quantjobs.modelspec import spec_from_path
    from quantjobs.plan_sources import spec_for_upload
    from quantjobs.sources import local_model_path

    sources = model_sources()
    assert sources.upload_spec is spec_for_upload
    assert sources.local_path is local_model_path
    assert sources.path_spec is spec_from_path


@pytest.mark.parametrize(
    ("source", "field"),
    [({"upload": "0b5c3c3e-0000-4000-8000-000000000000"}, "upload"),
     ({"path": "model.gguf"}, "path")],
)  # fmt: skip
def test_without_the_readers_a_plan_from_a_file_says_what_to_choose_instead(
    monkeypatch: pytest.MonkeyPatch, source: dict[str, str], field: str
) -> None:
    from planner import model_sources
    from planner.services import PlanInputError, model_resolve

    monkeypatch.setattr(model_sources, "_registered", [])
    with pytest.raises(PlanInputError) as raised:
        model_resolve(model="", config=None, **source)
    assert raised.value.field == field
    assert "choose a catalog model or paste a config.json" in str(raised.value)
