# syntax=docker/dockerfile:1
# The EventPulse app image: one image for migrations, the dataflow, the gateway, Dagster and
# Streamlit (docker-compose.yml picks the command). Pin by digest for production builds.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_PYTHON_DOWNLOADS=never \
    UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH \
    EVENTPULSE_DATA_DIR=/data \
    DAGSTER_HOME=/data/dagster

WORKDIR /app

# uv from PyPI at the pinned version, every artifact hash-checked (requirements/uv.txt, as `make uv` does).
COPY requirements/uv.txt ./requirements/uv.txt
RUN pip install --no-cache-dir --require-hashes --no-deps -r requirements/uv.txt

# Dependencies first, in their own layer, from the committed lock (uv.lock, hashed): they change far less often
# than the code, and every build installs exactly what the tests ran against. Runtime only: no dependency
# group (dev tools, tests, docs), not the client SDK (a workspace member, hence its pyproject.toml here).
COPY pyproject.toml uv.lock ./
COPY sdk/python/pyproject.toml ./sdk/python/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --no-install-workspace

COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
    && useradd --system --uid 1000 --home-dir /data eventpulse \
    && mkdir -p /data/dagster /data/recovery \
    && chown -R eventpulse /data

USER eventpulse
VOLUME /data
EXPOSE 8000 3000 8501
CMD ["eventpulse", "--help"]
