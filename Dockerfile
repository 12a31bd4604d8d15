# sheetid API + web page. BASE defaults to the official slim Python image; `make docker-smoke` passes a
# locally bootstrapped Debian base instead (no registry needed). Only `python3` is assumed in BASE.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3-venv python3-pip && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1
# CPU torch first: an unpinned torch would pull the multi-GB CUDA build.
RUN pip install torch==2.13.0
COPY pyproject.toml README.md cli.py /src/
COPY model /src/model
COPY indexer /src/indexer
COPY service /src/service
COPY migrations /src/migrations
RUN pip install /src

FROM ${BASE} AS runtime
# poppler for PDFs; FluidSynth + TimGM6mb so first start can render the demo recordings.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        poppler-utils fluidsynth timgm6mb-soundfont curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
RUN useradd --create-home --uid 10001 sheetid && mkdir -p /data && chown sheetid /data
USER sheetid
WORKDIR /home/sheetid
ENV PATH=/opt/venv/bin:$PATH SHEETID_DATA_DIR=/data PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=20 \
    CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
# `sheetid serve` applies the Alembic migrations in its start-up before it accepts requests.
CMD ["sheetid", "serve", "--host", "0.0.0.0", "--port", "8000"]
