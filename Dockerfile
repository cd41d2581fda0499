# syntax=docker/dockerfile:1
# The application image (docs/operations.md, "Containers"): one image for every process
# kind; compose.yaml runs it as migrate, web, worker and beat. Build: docker build -t crm .
# tests/project/test_deploy.py runs the command lines below outside a container.

# --- build: the locked runtime dependencies, in a virtual environment --------------------
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml requirements.lock ./
# requirements.lock pins the dependencies and the dev extra (pytest, playwright, mypy...).
# The image takes the runtime part only: the packages of [project] dependencies and every
# package locked "via" one of them, each block as locked, hashes included.
RUN python - <<'PY'
import re
import tomllib
from pathlib import Path


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
runtime = {canonical(NAME.match(req).group()) for req in project["dependencies"]}
blocks, via, current = {}, {}, None
for line in Path("requirements.lock").read_text().splitlines():
    if line and not line[0].isspace() and not line.startswith("#"):
        current = canonical(NAME.match(line).group())
        blocks[current], via[current] = [line], set()
    elif current and line.startswith(" "):
        blocks[current].append(line)
        dependent = re.match(r"\s*#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if dependent and dependent.group(1) != "via":
            via[current].add(canonical(dependent.group(1)))
missing = runtime - blocks.keys()
if missing:
    raise SystemExit(f"requirements.lock lacks {sorted(missing)}: run bin/lock")
grown = True
while grown:
    needed = {name for name, dependents in via.items() if dependents & runtime}
    grown = not needed <= runtime
    runtime |= needed
Path("runtime.lock").write_text(
    "".join("\n".join(blocks[name]) + "\n" for name in blocks if name in runtime)
)
print(f"{len(runtime)} of {len(blocks)} locked packages are runtime dependencies")
PY
RUN pip install --require-hashes --no-deps -r runtime.lock && pip check

# --- runtime: the virtual environment, the source, the collected static files ------------
FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 crm \
    && useradd --system --uid 10001 --gid crm --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin crm
COPY --from=build /opt/venv /opt/venv
# The source is imported from /app (PYTHONPATH), where manage.py, templates/ and static/
# are: settings find those beside the config package, so the project is not installed
# into the venv as a second copy.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    DJANGO_SETTINGS_MODULE=config.settings \
    CRM_DATA_DIR=/data \
    CRM_HEARTBEAT_DIR=/tmp/heartbeat \
    CRM_STATIC_HASHED=true \
    STATIC_ROOT=/app/staticfiles
WORKDIR /app
COPY manage.py pyproject.toml ./
COPY config config
COPY common common
COPY crm crm
COPY activities activities
COPY compat compat
COPY demo demo
COPY templates templates
COPY static static
RUN python -m compileall -q config common crm activities compat demo
# Hashed, compressed static files (whitenoise), made once here and read-only at run time.
# Importing the settings needs a key: a throwaway one for this command only, never an ENV
# of the image. The database and broker URLs are never connected to; they keep the
# settings from naming (and the app from making) SQLite or broker folders in the image.
RUN SECRET_KEY=build-only-collectstatic-key-not-a-secret-0123456789 \
    DATABASE_URL=postgres://build@127.0.0.1:5432/unused CELERY_BROKER_URL=memory:// \
    python manage.py collectstatic --no-input -v0
# The data folder: blobs and the outbox (web, worker), beat's schedule (beat). A named
# volume mounted here starts with this folder's owner.
RUN mkdir -p /data && chown crm:crm /data
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "manage.py", "health", "--kind", "web"]
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
