# syntax=docker/dockerfile:1.4
# The engine's image: the trainings API server (default command), train.py and predict.py, and
# Cog's entry points. `make image` builds it (docker when its daemon answers, else buildah) and
# tags it musicgen-ft:latest; `make image-test` also checks it from the inside (docs/cog.md).
#
#   docker run --gpus all -p 8000:8000 -v musicgen-ft:/data \
#       -e MUSICGEN_FT_TOKENS=change-me musicgen-ft
#   docker run --gpus all -v musicgen-ft:/data -v $PWD:/in:ro musicgen-ft \
#       python train.py --dataset_path /in/songs.zip --output_dir /data/runs/mine
#
# The install steps are scripts/install.sh's, the same ones cog.yaml declares for `cog build`
# (tests/test_image.py compares them). The torch pin resolves to its CUDA build from PyPI on
# Linux (the host needs an NVIDIA driver and the container toolkit); where pip is configured
# with a local CPU wheel, as on the CI machine, the image gets that one.
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1

WORKDIR /src
# Dependencies first (a layer that survives code changes), then the code. `make image` with
# buildah mounts the host's pip settings (index, CA bundle, local wheels) read-only at /mnt;
# nothing of them stays in the image.
COPY requirements.txt requirements-nodeps.txt requirements-lock.txt ./
COPY scripts/install.sh scripts/
RUN --mount=type=cache,target=/root/.cache/pip \
    if [ -f /mnt/pip.conf ]; then export PIP_CONFIG_FILE=/mnt/pip.conf; fi \
    && bash scripts/install.sh --install

COPY pyproject.toml cog.yaml train.py predict.py ./
COPY musicgen_ft/ musicgen_ft/
COPY preprocessing/ preprocessing/
COPY labeling/ labeling/
COPY training/ training/
COPY inference/ inference/
COPY evaluation/ evaluation/
COPY serving/ serving/
COPY config/ config/
COPY examples/ examples/
# The project itself (not a dependency): editable, so that the code Cog serves from /src is the
# code `musicgen-ft` runs; byte-compiled here because the runtime user cannot write /src.
RUN --mount=type=cache,target=/root/.cache/pip \
    if [ -f /mnt/pip.conf ]; then export PIP_CONFIG_FILE=/mnt/pip.conf; fi \
    && find /src -name __pycache__ -prune -exec rm -rf {} + \
    && pip install --no-deps --disable-pip-version-check -q -e /src \
    && python -m compileall -q /src \
    && useradd --uid 1000 --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin musicgen \
    && mkdir -p /data && chown musicgen:musicgen /data

# Every file the engine writes goes to /data (models, caches, jobs, the server's database);
# tokens come from MUSICGEN_FT_TOKENS at run time, weights from /data or downloads: neither is
# in the image.
ENV HOME=/data USER=musicgen XDG_CACHE_HOME=/data/.cache \
    MUSICGEN_FT_MODELS=/data/models MUSICGEN_FT_CACHE=/data/cache \
    HF_HOME=/data/huggingface TORCH_HOME=/data/torch MPLCONFIGDIR=/data/.config/matplotlib
USER musicgen
VOLUME /data
EXPOSE 8000
CMD ["musicgen-ft", "serve", "--host", "0.0.0.0", "--port", "8000", \
     "--db", "/data/musicgen-ft.db", "--data_dir", "/data/jobs"]
