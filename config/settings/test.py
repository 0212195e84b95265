"""Test settings: fast hashing, a separate var directory, the same database engine choice."""

from __future__ import annotations

import os
from pathlib import Path

from config.settings.base import *  # noqa: F403
from config.settings.base import DATABASES, VAR_DIR, env

DEBUG = False
SECRET_KEY = "insecure-test-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Everything a test session writes lives in its own folder, shared with the workers it
# starts (they inherit QUANTPLAN_TEST_RUN), so sessions running side by side never meet.
TEST_VAR_DIR = (
    VAR_DIR / "test" / env.str("QUANTPLAN_TEST_RUN", default=str(os.getpid()))
)
# A file-backed SQLite test database, so a real Celery worker process sees the same rows.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_VAR_DIR / "db.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {
        "NAME": f"test_quantplan_{env.str('QUANTPLAN_TEST_RUN', default=str(os.getpid()))}"
    }
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]

MEDIA_ROOT = TEST_VAR_DIR / "media"
QUANTPLAN_ARTIFACT_ROOT = MEDIA_ROOT / "artifacts"
QUANTPLAN_WORK_ROOT = Path(
    env.str("QUANTPLAN_WORK_ROOT", default=str(MEDIA_ROOT / "work"))
)
QUANTPLAN_UPLOAD_ROOT = MEDIA_ROOT / "uploads"
QUANTPLAN_LOCAL_MODEL_DIRS = [str(TEST_VAR_DIR / "models")]
QUANTPLAN_HEARTBEAT_STALE_S = env.int("QUANTPLAN_HEARTBEAT_STALE_S", default=20)
