"""The local folders a process of the embedded setup writes to, made when it starts.

Settings only name folders (importing them has no side effect: a read-only image can
import them, ``collectstatic`` can run at build time); each process makes the folders
its configuration uses here, from ``CommonConfig.ready``: the SQLite database's folder
and the file-system broker's. Blob storage and the outbox make theirs when they write.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def local_folders() -> list[Path]:
    """The folders this configuration needs before anything is written to them."""
    folders: list[Path] = []
    for db in settings.DATABASES.values():
        if db["ENGINE"] == "django.db.backends.sqlite3":
            for name in (db.get("NAME"), (db.get("TEST") or {}).get("NAME")):
                if name and str(name) != ":memory:" and not str(name).startswith("file:"):
                    folders.append(Path(name).parent)
    if str(getattr(settings, "CELERY_BROKER_URL", "")).startswith("filesystem://"):
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            if options.get(key):
                folders.append(Path(options[key]))
    return list(dict.fromkeys(folders))


def make_local_folders() -> None:
    for folder in local_folders():
        folder.mkdir(parents=True, exist_ok=True)
