"""File-system storage suited to content-addressed blobs."""

from __future__ import annotations

import os
import tempfile

from django.core.files.storage import FileSystemStorage


class BlobFileSystemStorage(FileSystemStorage):
    """``FileSystemStorage`` whose writes are atomic and whose blob names are final.

    A blob's name is its content's hash, so two writers of one name write the same
    bytes: the second replaces the first (``os.replace``) instead of getting a
    suffixed copy, and a reader never sees a half-written file.
    """

    def get_available_name(self, name: str, max_length: int | None = None) -> str:
        if name.startswith("blobs/"):
            return name
        return super().get_available_name(name, max_length=max_length)

    def _save(self, name: str, content) -> str:
        if not name.startswith("blobs/"):
            return super()._save(name, content)  # type: ignore[misc]  # the stub lacks Storage._save
        full_path = self.path(name)
        directory = os.path.dirname(full_path)
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                if hasattr(content, "chunks"):
                    for chunk in content.chunks():
                        out.write(chunk)
                else:
                    out.write(content.read())
            if self.file_permissions_mode is not None:
                os.chmod(tmp_path, self.file_permissions_mode)
            os.replace(tmp_path, full_path)
        except BaseException:
            if os.path.exists(tmp_path):
                os.unlink(tmp_path)
            raise
        return name
