"""Does requirements.lock cover pyproject.toml? Used by bin/_env.sh (to warn when the lock
is behind) and by tests/project/test_lock.py.

usage: python bin/_lockcheck.py   prints each problem and exits 1 if there is any.

The lock must pin every package with ``==`` and a hash, record no index URL or local
path, and pin for each requirement of pyproject.toml (the dependencies and the dev
extra) a version the requirement accepts. Needs ``packaging`` (pinned in the lock).
"""

from __future__ import annotations

import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("dev",)
# A lock that a fresh machine installs holds requirements only: no pip option (an index,
# find-links, an editable, another file), no local file or path.
LOCAL_PREFIXES = ("-", "/", ".", "~")


def pyproject_requirements(pyproject_text: str, extras: tuple[str, ...] = EXTRAS) -> list[str]:
    project = tomllib.loads(pyproject_text)["project"]
    requirements = list(project.get("dependencies", []))
    for extra in extras:
        requirements += project.get("optional-dependencies", {}).get(extra, [])
    return requirements


def lock_pins(lock_text: str) -> tuple[dict[str, Version], list[str]]:
    """The pinned version of each package, and the lines that are not a hashed pin."""
    pins: dict[str, Version] = {}
    problems: list[str] = []
    # A requirement runs on over lines ending in a backslash; comments start with "#".
    entries = lock_text.replace("\\\n", " ").splitlines()
    for entry in entries:
        line = " ".join(entry.split(" #", 1)[0].split())
        if not line or line.startswith("#"):
            continue
        spec, _, hashes = line.partition(" --hash=")
        if line.startswith(LOCAL_PREFIXES) or "file:" in line:
            problems.append(f"an option or a local path: {spec}")
            continue
        try:
            requirement = Requirement(spec)
        except InvalidRequirement:
            problems.append(f"not a requirement: {spec}")
            continue
        specifiers = list(requirement.specifier)
        if requirement.url or len(specifiers) != 1 or specifiers[0].operator not in ("==", "==="):
            problems.append(f"not pinned with ==: {spec}")
            continue
        if not hashes:
            problems.append(f"no hash: {spec}")
        pins[canonicalize_name(requirement.name)] = Version(specifiers[0].version)
    return pins, problems


def _for_extras(requirement: Requirement) -> list[tuple[Requirement, str]]:
    """What installed distributions need for the extras asked of them (celery[redis]
    needs kombu[redis], which needs redis), each with the requirement that asks for it."""
    try:
        declared = importlib.metadata.requires(requirement.name) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    needed = []
    for raw in declared:
        sub = Requirement(raw)
        if not sub.marker or sub.marker.evaluate({"extra": ""}):
            continue  # not for an extra; the resolver locked it with its package
        if any(sub.marker.evaluate({"extra": extra}) for extra in requirement.extras):
            sub.marker = None
            needed += [(sub, str(requirement)), *_for_extras(sub)]
    return needed


def unmet(pyproject_text: str, lock_text: str) -> list[str]:
    """Every way the lock fails pyproject.toml; empty when it covers it."""
    pins, problems = lock_pins(lock_text)
    for raw in pyproject_requirements(pyproject_text):
        requirement = Requirement(raw)
        for wanted, reason in [(requirement, ""), *_for_extras(requirement)]:
            asked = f"{wanted} (for {reason})" if reason else str(wanted)
            name = canonicalize_name(wanted.name)
            if name not in pins:
                problems.append(f"{asked} is not in the lock")
            elif not wanted.specifier.contains(pins[name], prereleases=True):
                problems.append(f"{asked} is not met by the lock's {name}=={pins[name]}")
    return problems


def main() -> int:
    lock = ROOT / "requirements.lock"
    if not lock.exists():
        print("requirements.lock is missing", file=sys.stderr)
        return 1
    problems = unmet((ROOT / "pyproject.toml").read_text(), lock.read_text())
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
