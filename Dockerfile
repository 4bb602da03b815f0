# The engine without Cog: the trainings API server (default), train.py and predict.py.
#
#   docker build -t musicgen-ft .
#   docker run --gpus all -p 8000:8000 -v musicgen-ft:/data \
#       -e MUSICGEN_FT_TOKENS=change-me musicgen-ft
#   docker run --gpus all -v $PWD:/work musicgen-ft \
#       python train.py --dataset_path /work/songs.zip --output_dir /work/run
#
# The torch wheel pinned in requirements.txt resolves to its CUDA build on Linux and brings
# the CUDA runtime with it; the host needs an NVIDIA driver and the container toolkit.
FROM python:3.11-slim-bookworm

ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1 USER=root \
    PATH=/src/.venv/bin:$PATH
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg libsndfile1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Dependencies first (a layer that survives code changes), then the code.
COPY pyproject.toml requirements.txt requirements-dev.txt requirements-nodeps.txt ./
COPY scripts/ scripts/
COPY musicgen_ft/ musicgen_ft/
COPY preprocessing/ preprocessing/
COPY labeling/ labeling/
COPY training/ training/
COPY inference/ inference/
COPY evaluation/ evaluation/
COPY serving/ serving/
COPY config/ config/
COPY train.py predict.py cog.yaml ./
RUN bash scripts/setup.sh

VOLUME /data
EXPOSE 8000
# Tokens come from MUSICGEN_FT_TOKENS (comma-separated), never from the image.
CMD ["musicgen-ft", "serve", "--host", "0.0.0.0", "--port", "8000", \
     "--db", "/data/musicgen-ft.db", "--data_dir", "/data/jobs"]
