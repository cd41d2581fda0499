"""One step of the benchmark in a fresh process: ``python -m bench.child ACTION PARAMS OUT``.

PARAMS is a JSON object of keyword arguments; the step's figures are written to OUT as
JSON. The environment (database, data folder, broker, mail URL) is set by the caller.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def setup_w4(*, n: int, n_small: int, page_sizes: list[int]) -> dict[str, Any]:
    """A table of ``n`` emails written by two bulk jobs; the list's statements are counted
    when it holds ``n_small`` and again when it holds ``n``."""
    from . import data
    from .workloads import w4_probe

    data.reset()
    world = data.make_world(delivery="external")
    data.make_contacts(n_small, city="Bergen")
    data.make_contacts(n - n_small, city="Oslo", start=n_small)
    probes = []
    for city in ("Bergen", "Oslo"):
        data.run_job(data.start_job(world, {"city": city}))
        probes.append(w4_probe(token=world["token"], page_sizes=page_sizes))
    return {**world, "n": n, "probes": probes}


def info() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
        else:
            cursor.execute("SELECT sqlite_version()")
        version = cursor.fetchone()[0]
    return {"vendor": connection.vendor, "version": version}


def main(argv: list[str]) -> int:
    action, params, out = argv[0], json.loads(argv[1]), argv[2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from . import data, load_db, workloads

    actions = {
        "setup": data.setup,
        "setup_w4": setup_w4,
        "info": info,
        "w1": workloads.w1,
        "l2": workloads.l2,
        "l1_build": workloads.l1_build,
        "l1": workloads.l1,
        "w2": workloads.w2,
        "w2_profile": workloads.w2_profile,
        "w3": workloads.w3,
        "w4": workloads.w4,
        "load_setup": load_db.setup,
        "load_verify": load_db.verify,
    }
    result = actions[action](**params)
    Path(out).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
