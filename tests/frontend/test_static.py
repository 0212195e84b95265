"""Static files collect with the storage `make run` and production use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management import call_command


def test_collectstatic_with_the_manifest_storage_succeeds(
    settings: Any, tmp_path: Path
) -> None:
    # The test settings use plain storage; `manage.py up` and production use the
    # manifest storage, which refuses a file that references a missing one (a
    # vendored script's source map did exactly that).
    settings.STATIC_ROOT = str(tmp_path)
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {
            "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        },
    }
    call_command("collectstatic", interactive=False, verbosity=0)

    manifest = tmp_path / "staticfiles.json"
    assert manifest.is_file()
    assert "frontend/vendor/tus-js-client/tus.min.js" in manifest.read_text()
