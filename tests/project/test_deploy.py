"""The container files: Dockerfile, .dockerignore and compose.yaml (docs/operations.md,
"Containers").

This machine runs no Docker engine. The files are read here and held to what an engine
would need: official images or the one built here, programs that exist, start-up in
order, one beat. The slow test then runs their command lines as they stand, outside a
container, on loopback: the image's collectstatic, the migrate service, then web, worker
and beat as separate processes on a PostgreSQL database and a Redis database of their
own, with DEBUG off and the production settings, behind a pretend HTTPS proxy. Each
process gets the environment its container would have (the image's ENV, then the
service's environment), with the container's folders mapped to folders of the test and
the service host names to loopback.
"""

from __future__ import annotations

import gzip
import http.client
import importlib.metadata
import importlib.util
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import brotli
import psycopg
import pytest
import redis
import yaml
from django.conf import settings
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from psycopg import sql

from tests.celery_worker import wait_for
from tests.services import unavailable
from tests.smtp import SMTPServer, free_port

ROOT = Path(__file__).resolve().parents[2]
# The virtual environment of this run (not resolved: a venv's python is a symlink).
VENV_BIN = Path(sys.executable).parent
BASE_IMAGES = {"python:3.11-slim"}
OFFICIAL_IMAGES = {"postgres:16", "redis:7"}
APP_IMAGE = "crm-email-activity"
APP_SERVICES = ("migrate", "web", "worker", "beat")
# What the official images run (their own programs, not this project's).
OFFICIAL_PROGRAMS = {"postgres:16": {"pg_isready"}, "redis:7": {"redis-server", "redis-cli"}}
# In the dev extra of requirements.lock only: never in the image.
DEV_ONLY = {
    "factory-boy",
    "import-linter",
    "locust",
    "moto",
    "mypy",
    "playwright",
    "pytest",
    "pytest-django",
    "ruff",
    "schemathesis",
    "uv",
}
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


# --- reading the Dockerfile -------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str
    heredoc: str = ""

    def exec_form(self) -> list[str]:
        """The JSON array of a CMD (or of a HEALTHCHECK's CMD)."""
        args = self.args.partition(" CMD ")[2] if self.keyword == "HEALTHCHECK" else self.args
        value = json.loads(args)
        assert isinstance(value, list), f"{self.keyword} is not in exec form: {self.args}"
        return value


def dockerfile() -> list[Instruction]:
    """The instructions, with continuation lines joined and heredoc bodies attached."""
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    instructions: list[Instruction] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\"):
            following = lines[i]
            i += 1
            if not following.lstrip().startswith("#"):
                line = line[:-1].rstrip() + " " + following.strip()
        keyword, _, args = line.strip().partition(" ")
        heredoc = ""
        marker = re.search(r"<<-?(['\"]?)(\w+)\1", args)
        if marker:
            end = lines.index(marker.group(2), i)
            heredoc = "\n".join(lines[i:end]) + "\n"
            i = end + 1
        instructions.append(Instruction(keyword.upper(), args.strip(), heredoc))
    return instructions


def final_stage() -> list[Instruction]:
    instructions = dockerfile()
    last_from = max(i for i, ins in enumerate(instructions) if ins.keyword == "FROM")
    return instructions[last_from:]


def env_assignments(args: str) -> dict[str, str]:
    return dict(token.split("=", 1) for token in shlex.split(args))


def image_env() -> dict[str, str]:
    """The ENV of the image, in order (values as written, ``$VAR`` unexpanded)."""
    env: dict[str, str] = {}
    for ins in final_stage():
        if ins.keyword == "ENV":
            env.update(env_assignments(ins.args))
    return env


def run_command(ins: Instruction) -> tuple[dict[str, str], list[str]]:
    """A RUN's leading VAR=value assignments and the command they are given to."""
    words = shlex.split(ins.args.split("&&")[0])
    assignments = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        key, value = words.pop(0).split("=", 1)
        assignments[key] = value
    return assignments, words


def collectstatic_run() -> Instruction:
    [ins] = [ins for ins in final_stage() if ins.keyword == "RUN" and "collectstatic" in ins.args]
    return ins


# --- reading compose.yaml ---------------------------------------------------------------


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}."""

    def replace(match: re.Match) -> str:
        name, operator, argument = match.groups()
        value = variables.get(name)
        if operator in (":-", ":?") and not value:
            value = None
        if value is not None:
            return value
        if operator and operator.endswith("?"):
            raise ValueError(f"{name}: {argument}")
        return argument or ""

    return ENV_REFERENCE.sub(replace, value)


def health_argv(test: list[str] | str) -> list[str]:
    if isinstance(test, str):
        return shlex.split(test)
    if test[0] == "CMD-SHELL":
        return shlex.split(test[1])
    assert test[0] == "CMD", test
    return test[1:]


def app_commands() -> list[tuple[str, list[str]]]:
    """Every command line of the app: compose's commands and health checks of the
    services built here, the image's CMD, HEALTHCHECK and the RUNs that call manage.py."""
    found = []
    for name, service in compose()["services"].items():
        if "build" not in service:
            continue
        found.append((f"{name} command", service["command"]))
        check = service.get("healthcheck", {})
        if not check.get("disable"):
            found.append((f"{name} healthcheck", health_argv(check["test"])))
    for ins in final_stage():
        if ins.keyword == "CMD":
            found.append(("image CMD", ins.exec_form()))
        elif ins.keyword == "HEALTHCHECK":
            found.append(("image HEALTHCHECK", ins.exec_form()))
        elif ins.keyword == "RUN" and "manage.py" in ins.args:
            found.append((f"image RUN {ins.args[:40]}...", run_command(ins)[1]))
    return found


@pytest.fixture(scope="module")
def management_commands() -> set[str]:
    result = subprocess.run(
        [sys.executable, "manage.py", "help", "--commands"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def problems_of(argv: list[str], commands: set[str]) -> list[str]:
    """Why this command line would not run in the image (empty: it would)."""
    program, *args = argv
    if not (VENV_BIN / program).is_file():
        return [f"{program!r} is not a program of the virtual environment"]
    if program == "python":
        if args[:1] == ["manage.py"]:
            if len(args) < 2 or args[1] not in commands:
                return [f"manage.py has no command {args[1:2]}"]
        elif args[:1] == ["-m"]:
            if importlib.util.find_spec(args[1]) is None:
                return [f"no module {args[1]}"]
        else:
            return [f"python runs neither manage.py nor a module: {argv}"]
    elif program == "gunicorn":
        config = args[args.index("-c") + 1]
        if not (ROOT / config).is_file():
            return [f"no gunicorn config {config}"]
        if not (ROOT / (args[-1].replace(".", "/") + ".py")).is_file():
            return [f"no WSGI module {args[-1]}"]
    elif program == "celery":
        app = args[args.index("-A") + 1]
        if not (ROOT / app / "celery.py").is_file():
            return [f"no Celery app in {app}/celery.py"]
        if not {"worker", "beat"} & set(args):
            return [f"celery runs neither a worker nor beat: {argv}"]
    return []


# --- the files --------------------------------------------------------------------------


def test_compose_runs_official_images_and_the_image_built_here():
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", *APP_SERVICES}
    for name, service in services.items():
        if "build" in service:
            assert service["build"] == ".", name
            assert service.get("image", APP_IMAGE) == APP_IMAGE, name
        else:
            assert service["image"] in OFFICIAL_IMAGES, name
            check = health_argv(service["healthcheck"]["test"])
            assert check[0] in OFFICIAL_PROGRAMS[service["image"]], name
    assert {name for name, s in services.items() if "build" in s} == set(APP_SERVICES)
    bases = [ins.args.split()[0] for ins in dockerfile() if ins.keyword == "FROM"]
    assert len(bases) >= 2 and set(bases) <= BASE_IMAGES  # multi-stage, official Python


def test_every_app_command_line_names_a_program_and_command_that_exist(management_commands):
    found = app_commands()
    kinds = {what.split()[0] for what, _ in found}
    assert {"migrate", "web", "worker", "beat", "image"} <= kinds
    problems = {what: p for what, argv in found if (p := problems_of(argv, management_commands))}
    assert problems == {}
    # The check itself bites.
    assert problems_of(["python", "manage.py", "no_such_command"], management_commands)
    assert problems_of(["uwsgi", "--http", ":8000"], management_commands)
    assert problems_of(["celery", "-A", "nowhere", "worker"], management_commands)


def test_the_process_kinds_run_the_commands_of_the_production_layer():
    services = compose()["services"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--no-input"]
    assert services["web"]["command"] == ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
    assert services["worker"]["command"] == ["celery", "-A", "config", "worker", "--loglevel=INFO"]
    beat = services["beat"]["command"]
    assert beat[:5] == ["celery", "-A", "config", "beat", "--loglevel=INFO"]
    [schedule] = [arg for arg in beat if arg.startswith("--schedule=")]
    # Beat's schedule is kept in beat's own volume.
    [mount] = [v for v in services["beat"]["volumes"] if v.startswith("beat:")]
    assert schedule.removeprefix("--schedule=").startswith(mount.split(":")[1] + "/")
    # Only one beat: none embedded in a worker, none replicated.
    assert not {"-B", "--beat"} & set(services["worker"]["command"])
    assert services["beat"].get("deploy", {}).get("replicas", 1) == 1
    # The image's default command is the web process.
    [cmd] = [ins for ins in final_stage() if ins.keyword == "CMD"]
    assert cmd.exec_form() == services["web"]["command"]


def test_each_process_kind_has_its_health_check_and_starts_in_order():
    services = compose()["services"]
    for kind in ("web", "worker", "beat"):
        test = services[kind]["healthcheck"]["test"]
        assert health_argv(test) == ["python", "manage.py", "health", "--kind", kind]
    assert services["migrate"]["healthcheck"] == {"disable": True}
    assert services["migrate"]["restart"] == "no"
    for kind in ("web", "worker"):
        assert services[kind]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"},
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
        }
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["beat"]["depends_on"] == {"redis": {"condition": "service_healthy"}}
    [check] = [ins for ins in final_stage() if ins.keyword == "HEALTHCHECK"]
    assert check.exec_form() == ["python", "manage.py", "health", "--kind", "web"]


def test_the_image_runs_as_a_user_with_hashed_static_files_and_no_key():
    stage = final_stage()
    env = image_env()
    users = [ins.args for ins in stage if ins.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert env["CRM_STATIC_HASHED"] == "true"
    assert "DEBUG" not in env
    assert [ins.args for ins in stage if ins.keyword == "EXPOSE"] == ["8000"]
    workdir = [ins.args for ins in stage if ins.keyword == "WORKDIR"][-1]
    assert env["PYTHONPATH"] == workdir
    # The build stage's venv, copied over: no compiler or pip cache in the runtime stage.
    venv = env["PATH"].split(":")[0]
    assert any(
        ins.keyword == "COPY"
        and ins.args.startswith("--from=")
        and venv.startswith(ins.args.split()[-1])
        for ins in stage
    )
    # collectstatic at build, with a key for that command only.
    assignments, command = run_command(collectstatic_run())
    assert command == ["python", "manage.py", "collectstatic", "--no-input", "-v0"]
    assert len(assignments["SECRET_KEY"]) >= 32
    for ins in dockerfile():
        if ins.keyword in ("ENV", "ARG"):
            assert "SECRET_KEY" not in ins.args, ins.args
    # The data folder belongs to the user the processes run as.
    [mkdir] = [ins for ins in stage if ins.keyword == "RUN" and "mkdir" in ins.args]
    assert env["CRM_DATA_DIR"] in mkdir.args and "chown" in mkdir.args


def test_the_image_installs_the_runtime_part_of_the_lock_with_its_hashes(tmp_path):
    [script] = [ins.heredoc for ins in dockerfile() if "requirements.lock" in ins.heredoc]
    [install] = [ins.args for ins in dockerfile() if ins.keyword == "RUN" and "pip" in ins.args]
    assert "--require-hashes" in install and "pip check" in install
    # A RUN with a heredoc needs BuildKit's Dockerfile syntax 1.4 or later.
    assert (ROOT / "Dockerfile").read_text().startswith("# syntax=docker/dockerfile:1\n")
    lock_name = shlex.split(install)[shlex.split(install).index("-r") + 1]
    for name in ("pyproject.toml", "requirements.lock"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    result = subprocess.run(
        [sys.executable, "-"], input=script, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    chosen = (tmp_path / lock_name).read_text()
    lock = (ROOT / "requirements.lock").read_text()
    blocks = re.split(r"\n(?=\S)", chosen.strip())
    names = {canonicalize_name(re.match(r"[A-Za-z0-9._-]+", b).group()) for b in blocks}
    for block in blocks:
        assert block in lock and "--hash=sha256:" in block, block
    # Everything the project needs at run time, as the installed packages declare it.
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert runtime_closure(runtime) <= names
    assert not DEV_ONLY & names


def runtime_closure(requirements: list[str]) -> set[str]:
    """The distributions these requirements pull in, markers evaluated for this Python."""
    names: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    stack = [Requirement(text) for text in requirements]
    while stack:
        requirement = stack.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        for text in importlib.metadata.requires(requirement.name) or []:
            dependency = Requirement(text)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(
                dependency.marker.evaluate({"extra": extra}) for extra in extras
            ):
                stack.append(dependency)
    return names


def test_the_build_context_leaves_out_secrets_and_local_state():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".git", ".venv", "data"} <= ignored
    copied = [
        source
        for ins in dockerfile()
        if ins.keyword == "COPY" and not ins.args.startswith("--from=")
        for source in ins.args.split()[:-1]
    ]
    assert copied and not set(copied) & ignored


def test_compose_refuses_to_start_without_the_operator_secrets():
    web = compose()["services"]["web"]["environment"]
    references = [m.group(0) for value in web.values() for m in ENV_REFERENCE.finditer(value)]
    assert all(ref.startswith("${") for ref in references) and references
    assert "$" not in ENV_REFERENCE.sub("", " ".join(web.values()))  # nothing malformed
    operator = {"SECRET_KEY": "s" * 50, "POSTGRES_PASSWORD": "pw"}
    resolved = {key: interpolate(value, operator) for key, value in web.items()}
    assert resolved["SECRET_KEY"] == "s" * 50
    assert resolved["DATABASE_URL"] == "postgres://crm:pw@postgres:5432/crm"
    assert resolved["CRM_HTTPS"] == "true"  # behind the HTTPS proxy unless told otherwise
    assert "DEBUG" not in web  # off
    for missing in operator:
        with pytest.raises(ValueError, match=missing):
            for value in web.values():
                interpolate(value, {k: v for k, v in operator.items() if k != missing})


def test_gunicorn_loads_the_app_from_the_web_command_line(tmp_path):
    command = compose()["services"]["web"]["command"]
    result = subprocess.run(
        [*command, "--check-config"],
        cwd=ROOT,
        env={
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "CRM_DATA_DIR": str(tmp_path),
            "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
            "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the command lines, run -------------------------------------------------------------

HOST = "crm.example.com"
PASSWORD = "a-long-pass-phrase-for-ops"


def postgres_admin_url() -> str:
    """The suite's PostgreSQL server when it runs on one, else the machine's."""
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.postgresql":
        auth = quote(db.get("USER") or "postgres", safe="")
        if db.get("PASSWORD"):
            auth += ":" + quote(db["PASSWORD"], safe="")
        return (
            f"postgres://{auth}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/postgres"
        )
    return "postgres://postgres@127.0.0.1:5432/postgres"


def redis_url() -> str:
    """Database 9 of the suite's Redis when it runs on one, else of the machine's."""
    broker = settings.CELERY_BROKER_URL
    if broker.startswith("redis://"):
        return urlunsplit(urlsplit(broker)._replace(path="/9"))
    return "redis://127.0.0.1:6379/9"


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def map_paths(value: str, paths: dict[str, Path]) -> str:
    """Each container path in a value (``:``-separated, or after ``--option=``) mapped."""

    def one(part: str) -> str:
        for container in sorted(paths, key=len, reverse=True):
            if part == container or part.startswith(container + "/"):
                return str(paths[container]) + part[len(container) :]
        return part

    if value.startswith("--") and "=" in value:
        option, _, rest = value.partition("=")
        return f"{option}={map_paths(rest, paths)}"
    return ":".join(one(part) for part in value.split(":"))


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), ""), value)


def build_env(paths: dict[str, Path]) -> dict[str, str]:
    """What a RUN of the image's last stage sees: a bare environment and the image's ENV."""
    env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}
    for key, value in image_env().items():
        env[key] = map_paths(expand(value, env), paths)
    return env


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group, as in a container of its own
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def group_left(self) -> bool:
        """Is any process of its group (gunicorn's workers, Celery's pool) still there?"""
        assert self.popen is not None
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def kill(self) -> None:
        if self.popen is not None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.popen.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self):
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Client:
    """Requests as the HTTPS proxy in front passes them on: the public host name,
    X-Forwarded-Proto and X-Forwarded-For. Cookies kept by hand (they are Secure)."""

    port: int
    headers: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)

    def request(self, method, path, *, body=b"", headers=None, https=True) -> Response:
        sent = {"Host": HOST, "X-Forwarded-For": "203.0.113.7", **self.headers, **(headers or {})}
        if https:
            sent["X-Forwarded-Proto"] = "https"
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=sent)
            answer = connection.getresponse()
            response = Response(answer.status, answer.msg, answer.read())
        finally:
            connection.close()
        for line in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(line).items():
                self.cookies[name] = morsel.value
        return response

    def get(self, path, **kwargs) -> Response:
        return self.request("GET", path, **kwargs)

    def post_form(self, path, data: dict[str, str]) -> Response:
        return self.request(
            "POST",
            path,
            body=urlencode(data).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Origin": f"https://{HOST}",
                "Referer": f"https://{HOST}{path}",
            },
        )

    def post_json(self, path, data) -> Response:
        return self.request(
            "POST",
            path,
            body=json.dumps(data).encode(),
            headers={"Content-Type": "application/json"},
        )


def cookie_line(response: Response, name: str) -> str:
    [line] = [c for c in response.headers.get_all("Set-Cookie") or [] if c.startswith(name + "=")]
    return line


def max_age(cache_control: str | None) -> int:
    match = re.search(r"max-age=(\d+)", cache_control or "")
    return int(match.group(1)) if match else 0


def sweep_succeeded(log: str) -> bool:
    """A JSON log line (LOG_FORMAT=json) of the worker: the sweep ran and succeeded."""
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        message = record.get("message", "") if isinstance(record, dict) else ""
        if "activities.tasks.sweep_email_delivery" in message and "succeeded" in message:
            return True
    return False


@pytest.fixture
def services():
    """A fresh PostgreSQL database and an empty Redis database for the processes."""
    admin_url, broker_url = postgres_admin_url(), redis_url()
    try:
        psycopg.connect(admin_url, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        unavailable(f"needs PostgreSQL at {urlsplit(admin_url).hostname}: {exc}")
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"needs Redis at {broker_url}: {exc}")
    name = f"crm_deploy_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    client.flushdb()
    try:
        yield {"DATABASE_URL": with_database(admin_url, name), "REDIS_URL": broker_url}
    finally:
        client.flushdb()
        client.close()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.mark.slow
@pytest.mark.postgres_lane  # its own PostgreSQL and Redis in every lane
def test_the_process_kinds_serve_the_pages_and_the_api_with_debug_off(services, tmp_path):
    started = time.monotonic()
    spec = compose()
    image = image_env()
    smtp = SMTPServer().start()
    web_port = free_port()
    # The operator's .env.
    operator = {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "POSTGRES_PASSWORD": "unused-here",
        "ALLOWED_HOSTS": HOST,
        "CRM_PUBLIC_URL": f"https://{HOST}",
    }
    # Where the containers' service names point on this machine, and the sweep sooner
    # (every 2 s instead of 30 s) so that beat's work shows within the test.
    network = {
        "DATABASE_URL": services["DATABASE_URL"],
        "CELERY_BROKER_URL": services["REDIS_URL"],
        "CACHE_URL": services["REDIS_URL"],
        "EMAIL_URL": smtp.email_url(),
        "CRM_SWEEP_INTERVAL": "2",
    }
    image_paths = {
        image["PATH"].split(":")[0]: VENV_BIN,
        image["PYTHONPATH"]: ROOT,
        image["STATIC_ROOT"]: tmp_path / "static",  # made at build, the same in every container
    }

    def container(name: str) -> tuple[dict[str, str], dict[str, Path]]:
        """The environment and folders of the service's container: its volumes shared
        with the services that mount them, everything else of its own."""
        service = spec["services"][name]
        paths = {
            **image_paths,
            image["CRM_DATA_DIR"]: tmp_path / name / "data",
            image["CRM_HEARTBEAT_DIR"]: tmp_path / name / "heartbeat",
        }
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            paths[target] = tmp_path / "volumes" / source
        env = build_env(paths)
        env["HOME"] = str(paths[image["CRM_DATA_DIR"]])  # the user's home in the image
        for key, value in service.get("environment", {}).items():
            env[key] = map_paths(interpolate(value, operator), paths)
        assert set(network) - {"CRM_SWEEP_INTERVAL"} <= set(env)  # only addresses replaced
        env.update(network)
        for folder in paths.values():
            if folder.is_relative_to(tmp_path) and folder != tmp_path / "static":
                folder.mkdir(parents=True, exist_ok=True)
        return env, paths

    def argv(name: str, command: list[str]) -> list[str]:
        return [map_paths(arg, container(name)[1]) for arg in command]

    # The image's build step and the one-off migrate service, side by side.
    build = collectstatic_run()
    build_paths = {**image_paths, image["CRM_DATA_DIR"]: tmp_path / "build" / "data"}
    collect = subprocess.Popen(
        ["/bin/sh", "-c", build.args],
        cwd=ROOT,
        env=build_env(build_paths),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    migrate_env, _ = container("migrate")
    migrate = subprocess.run(
        argv("migrate", spec["services"]["migrate"]["command"]),
        cwd=ROOT,
        env=migrate_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    collected = collect.communicate(timeout=120)[0]
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    assert "Applying crm.0001" in migrate.stdout
    assert collect.returncode == 0, collected
    assert (tmp_path / "static" / "staticfiles.json").is_file()
    assert not (tmp_path / "build").exists()  # nothing made in the image's data folder

    envs = {name: container(name)[0] for name in ("web", "worker", "beat")}
    envs["web"]["GUNICORN_BIND"] = f"127.0.0.1:{web_port}"  # loopback, not 0.0.0.0:8000
    processes = {
        name: Process(
            name,
            argv(name, spec["services"][name]["command"]),
            envs[name],
            tmp_path / f"{name}.log",
        )
        for name in envs
    }
    try:
        for process in processes.values():
            process.start()
        # A staff user with an approved address and an API token, as an operator makes
        # one (docker compose exec web python manage.py shell -c ...).
        made = subprocess.run(
            [
                "python",
                "manage.py",
                "shell",
                "-c",
                "import os\n"
                "from rest_framework.authtoken.models import Token\n"
                "from crm.models import EmailApproval, User\n"
                "user = User.objects.create_superuser('ops', 'ops@example.com',"
                " os.environ['OPS_PASSWORD'],"
                " email_router_access_approval=EmailApproval.APPROVED)\n"
                "print(Token.objects.create(user=user).key)",
            ],
            cwd=ROOT,
            env={**envs["web"], "OPS_PASSWORD": PASSWORD},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        token = made.stdout.split()[-1]

        # Each kind's own health check, as its container runs it.
        def healthy(name: str) -> bool:
            check = health_argv(spec["services"][name]["healthcheck"]["test"])
            result = subprocess.run(
                argv(name, check), cwd=ROOT, env=envs[name], capture_output=True, timeout=60
            )
            return result.returncode == 0

        for name in ("web", "worker", "beat"):
            wait_for(
                lambda name=name: healthy(name),
                what=f"{name} to be healthy",
                timeout=60,
                workers=tuple(processes.values()),
                interval=0.5,
            )

        anonymous = Client(web_port)
        # The load balancer's probe: plain HTTP, never redirected.
        ready = anonymous.get("/health/ready/", https=False)
        assert ready.status == 200, ready.text
        assert ready.json() == {
            "status": "ok",
            "checks": {"database": "ok", "broker": "ok", "storage": "ok", "shared_cache": "ok"},
        }
        # Anything else over plain HTTP is sent to HTTPS.
        plain = anonymous.get("/mail/", https=False)
        assert (plain.status, plain.header("Location")) == (301, f"https://{HOST}/mail/")

        # The sign-in page, with hashed static names that whitenoise serves compressed
        # and cached for good.
        browser = Client(web_port)
        page = browser.get("/sign-in/")
        assert page.status == 200, page.text
        assert "max-age=31536000" in (page.header("Strict-Transport-Security") or "")
        css = re.search(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', page.text)
        assert css, page.text
        stylesheet = (tmp_path / "static" / css.group(1).removeprefix("/static/")).read_bytes()
        for encoding, decompress in (("br", brotli.decompress), ("gzip", gzip.decompress)):
            served = browser.get(css.group(1), headers={"Accept-Encoding": encoding})
            assert served.status == 200
            assert served.header("Content-Encoding") == encoding
            assert decompress(served.body) == stylesheet
            assert max_age(served.header("Cache-Control")) >= 365 * 24 * 3600
        identity = browser.get(css.group(1))
        assert identity.body == stylesheet and identity.header("Content-Encoding") is None

        # An unknown page: a plain 404, no debug page.
        missing = browser.get("/no-such-page/")
        assert missing.status == 404
        for debug_text in ("DEBUG = True", "URLconf", "Traceback"):
            assert debug_text not in missing.text

        # Sign in (CSRF and POST) and open the mail list.
        form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert form_token and "csrftoken" in browser.cookies
        signed_in = browser.post_form(
            "/sign-in/",
            {"username": "ops", "password": PASSWORD, "csrfmiddlewaretoken": form_token.group(1)},
        )
        assert (signed_in.status, signed_in.header("Location")) == (302, "/mail/"), signed_in.text
        session_cookie = cookie_line(signed_in, "sessionid")
        assert "Secure" in session_cookie and "HttpOnly" in session_cookie
        mail = browser.get("/mail/")
        assert mail.status == 200 and "Sign out" in mail.text

        # The API: an email created and sent, delivered by the worker over SMTP.
        api = Client(web_port, headers={"Authorization": f"Token {token}"})
        created = api.post_json(
            "/api/v1/emails/",
            {"subject": "Deployed", "body_text": "Hello Ann", "to": ["Ann Lee <ann@example.com>"]},
        )
        assert created.status == 201, created.text
        email_id = created.json()["id"]
        sent = api.post_json(f"/api/v1/emails/{email_id}/send/", {})
        assert sent.status == 202, sent.text
        assert sent.json()["status"] == "pending_send"
        wait_for(
            lambda: smtp.messages,
            what="the worker to deliver the email",
            timeout=30,
            workers=tuple(processes.values()),
        )
        [received] = smtp.messages
        assert received.rcpt_tos == ["ann@example.com"]
        assert received.message["Subject"] == sent.json()["subject"]
        wait_for(
            lambda: api.get(f"/api/v1/emails/{email_id}/").json()["status"] == "sent",
            what="the email to be sent",
            timeout=15,
        )

        # Beat, a process of its own: its heartbeat is fresh, and the sweep it publishes
        # runs on the worker (the worker's log lines are JSON: LOG_FORMAT from compose).
        heartbeat = tmp_path / "beat" / "heartbeat" / "beat.alive"
        assert time.time() - heartbeat.stat().st_mtime < 10
        assert not (tmp_path / "worker" / "heartbeat" / "beat.alive").exists()
        wait_for(
            lambda: sweep_succeeded(processes["worker"].log()),
            what="the sweep published by beat to run on the worker",
            timeout=20,
            workers=tuple(processes.values()),
        )

        # SIGTERM, as `docker compose stop` sends it: each kind stops within 15 s and
        # leaves no process behind.
        for process in processes.values():
            process.popen.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        took = {}
        for name, process in processes.items():
            try:
                process.popen.wait(timeout=max(0.1, stopping + 15 - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            took[name] = None if process.alive() else round(time.monotonic() - stopping, 1)
        assert None not in took.values(), took
        time.sleep(0.5)
        assert [name for name, p in processes.items() if p.group_left()] == []
    finally:
        for process in processes.values():
            process.kill()
            print(f"----- log of {process.name} -----\n{process.log()}")
        smtp.stop()
    print(f"stopped in {took} s; the whole test took {time.monotonic() - started:.0f} s")
