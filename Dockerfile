# sheetid API + web page.
# BASE defaults to the official slim Python image; `make docker-smoke` passes a locally bootstrapped
# Debian base instead (no registry needed), so only `python3` is assumed to exist in BASE.
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
# Where CPU torch comes from. PyPI's Linux torch is the multi-GB CUDA build, so the default adds
# PyTorch's CPU index; `make docker-smoke` empties it and puts the CPU wheel in .docker/wheels/.
# The GPU variant (docker-compose.gpu.yml) sets both empty to take PyPI's CUDA build.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ARG TORCH_FIND_LINKS=/wheels
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY .docker/wheels/ /wheels/
RUN pip install ${TORCH_FIND_LINKS:+--find-links $TORCH_FIND_LINKS} \
        ${TORCH_INDEX:+--extra-index-url $TORCH_INDEX} 'torch==2.13.0'
COPY pyproject.toml README.md cli.py /src/
COPY model /src/model
COPY indexer /src/indexer
COPY service /src/service
COPY benchmarks /src/benchmarks
COPY migrations /src/migrations
# EXTRAS=scale adds the PostgreSQL and Milvus clients (docker-compose.scale.yml builds with it).
ARG EXTRAS=""
RUN pip install "/src${EXTRAS:+[$EXTRAS]}" && python3 -c "import torch, faiss, verovio, cli"

FROM ${BASE} AS runtime
# poppler renders uploaded PDFs; FluidSynth + TimGM6mb render the demo recordings on first start.
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        poppler-utils fluidsynth timgm6mb-soundfont curl && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 sheetid && mkdir -p /data && chown sheetid /data
ENV PATH=/opt/venv/bin:$PATH SHEETID_DATA_DIR=/data PYTHONUNBUFFERED=1
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=30 \
    CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
WORKDIR /home/sheetid
USER sheetid
# `sheetid serve` applies the Alembic migrations before it accepts requests (lifespan start-up).
CMD ["sheetid", "serve", "--host", "0.0.0.0", "--port", "8000"]
# The large venv comes last: every later step would copy it again on copy-based storage drivers (vfs).
COPY --from=build /opt/venv /opt/venv
