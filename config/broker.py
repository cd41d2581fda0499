"""The embedded default broker: kombu's file-system transport, with whole messages only.

kombu's own transport (5.7.0) creates a message file in the queue folder and then writes
the message into it. A worker that lists the folder in between takes the file while it
is still empty and fails to decode it (``JSONDecodeError: Expecting value``) as an
"Unrecoverable error" that stops the whole worker (celery/kombu#1551, open). The lock
kombu takes while writing does not help: a worker moves the file without looking at it.

Here a message is written under a name the worker does not take (a ``.part`` file, in
the same folder, so on the same file system) and renamed to its message name once it is
whole and flushed: a rename is atomic, so a worker sees no file or the whole message.
It takes the place of kombu's own for ``filesystem://`` URLs (config/celery.py).
"""

from __future__ import annotations

import logging
import os
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

logger = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    # kombu names the argument "payload" here and "message" in its base: the ignore.
    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]
        """Put ``payload`` on ``queue``: written whole under a temporary name, then
        renamed to the payload name kombu's ``_get`` looks for (``<ms>_<uuid>.<queue>.msg``,
        in time order)."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # ``_get`` takes only names whose part after the first dot is ``<queue>.msg``.
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, final)
        except OSError as exc:
            try:
                os.unlink(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        """The next message of ``queue``. One that cannot be decoded (a file left half
        written by kombu's own transport, or damaged on disk) is logged and skipped: it
        is gone from the folder either way, and the sweep finds its email by due time,
        where kombu would stop the worker."""
        try:
            return super()._get(queue)  # kombu's file-system channel takes no timeout
        except ValueError as exc:
            logger.error("broker: skipped a message of queue %s that is not JSON: %s", queue, exc)
            raise Empty() from exc


class Transport(filesystem.Transport):
    Channel = Channel
