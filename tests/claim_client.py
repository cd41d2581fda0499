"""An external send component, as a process of its own, for the claim fault tests.

    python -m tests.claim_client BASE_URL TOKEN LOG STOP_FILE BATCH LEASE_SECONDS MODE

Claims up to BATCH emails over the API, "sends" them (a short pause), and reports each
as sent, per email (MODE ``single``: ``{id}/delivery-result/``) or in one call (MODE
``batch``: ``delivery-results/``), until STOP_FILE exists. Every step is one line
appended to LOG with a single unbuffered write, so a SIGKILL loses no line it wrote:

    claimed <id> <token>      the claim answered with this email and lease token
    recorded <id> <token>     the report was accepted
    refused <id> <token> <code>   the report was refused (e.g. stale_lease)

Each request carries an ``Idempotency-Key`` and is sent again with it if the network
loses the answer. Standard library only: it imports nothing of the project, as a real
integrator would not.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import sys
import time
import urllib.error
import urllib.request
import uuid


class Client:
    def __init__(self, base: str, token: str):
        self.base = base.rstrip("/") + "/api/v1/"
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def post(self, path: str, body: dict) -> tuple[int, dict]:
        """POST with an ``Idempotency-Key``; a request whose answer the network lost is
        sent again with the same key, so the server replays its first answer."""
        headers = {**self.headers, "Idempotency-Key": uuid.uuid4().hex}
        data = json.dumps(body).encode()
        for attempt in range(5):
            request = urllib.request.Request(self.base + path, data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=60) as response:
                    return response.status, json.loads(response.read() or b"{}")
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read() or b"{}")
            except (urllib.error.URLError, OSError, http.client.HTTPException):
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")


def main(argv: list[str]) -> int:
    base, token, log_path, stop_file, batch, lease, mode = argv
    client = Client(base, token)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(line: str) -> None:
        os.write(log, (line + "\n").encode())

    rng = random.Random(os.getpid())
    while not os.path.exists(stop_file):
        status, body = client.post(
            "emails/claim/", {"max": int(batch), "lease_seconds": int(lease)}
        )
        if status != 200:
            write(f"error claim {status} {json.dumps(body)}")
            return 1
        claimed = [(email["id"], email["lease_token"]) for email in body["results"]]
        for pk, lease_token in claimed:
            write(f"claimed {pk} {lease_token}")
        if not claimed:
            time.sleep(0.05)
            continue
        time.sleep(rng.uniform(0.0, 0.03))  # the hand-over to the mail server
        if mode == "batch":
            results = [{"id": pk, "lease_token": t, "outcome": "sent"} for pk, t in claimed]
            status, body = client.post("emails/delivery-results/", {"results": results})
            if status != 200:
                write(f"error report {status} {json.dumps(body)}")
                return 1
            tokens = dict(claimed)
            for outcome in body["results"]:
                pk = outcome["id"]
                if outcome["recorded"]:
                    write(f"recorded {pk} {tokens[pk]}")
                else:
                    write(f"refused {pk} {tokens[pk]} {outcome['code']}")
            continue
        for pk, lease_token in claimed:
            status, body = client.post(
                f"emails/{pk}/delivery-result/", {"lease_token": lease_token, "outcome": "sent"}
            )
            if status == 200:
                write(f"recorded {pk} {lease_token}")
            elif status == 409:
                write(f"refused {pk} {lease_token} {body.get('code')}")
            else:
                write(f"error report {status} {json.dumps(body)}")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
