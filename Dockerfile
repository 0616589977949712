# syntax=docker/dockerfile:1
# The EventPulse app image: one image for migrations, the dataflow, the gateway, Dagster and
# Streamlit (docker-compose.yml picks the command). Pin by digest for production builds.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EVENTPULSE_DATA_DIR=/data \
    DAGSTER_HOME=/data/dagster

WORKDIR /app

# Dependencies first, in their own layer, from the committed hashed lock: they change far less often
# than the code, and every build installs exactly what the tests ran against.
COPY requirements/runtime.lock ./requirements/runtime.lock
RUN --mount=type=cache,target=/root/.cache/pip \
    pip install --require-hashes --no-deps -r requirements/runtime.lock

COPY . .
RUN pip install --no-deps --no-cache-dir . \
    && useradd --system --uid 1000 --home-dir /data eventpulse \
    && mkdir -p /data/dagster /data/recovery \
    && chown -R eventpulse /data

USER eventpulse
VOLUME /data
EXPOSE 8000 3000 8501
CMD ["eventpulse", "--help"]
