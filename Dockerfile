# RF-DETR Keypoint demo.
#
# CPU image (default, small: CPU-only torch wheels):
#   docker build -t rfdetr-demo .
# CUDA image (PyPI's Linux torch wheels bundle CUDA; run with --gpus all and the NVIDIA container toolkit):
#   docker build -t rfdetr-demo:cuda --build-arg TORCH_INDEX_URL= --build-arg WITH_OPENVINO=0 .
# Run (weights are downloaded once into the named volume, never baked into the image):
#   docker run --rm -p 7860:7860 -v rfdetr-cache:/cache rfdetr-demo
#
# Install steps are the ones CI runs: `pip install -r requirements.txt`. No secrets are baked in: pass HF_TOKEN
# (private Hub checkpoints) and RFDETR_DEMO_AUTH at `docker run` time with -e / --env-file.

ARG PYTHON_VERSION=3.11

# onnxruntime-web for the Webcam tab's in-browser engine, exactly as pinned by web/package-lock.json (the page would
# otherwise load the same files from a public CDN).
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:${PYTHON_VERSION}-slim-bookworm

# Extra package index for torch: the CPU-only wheels by default (about 5x smaller than the CUDA ones).
# Set it empty for the CUDA variant.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# OpenVINO (~180 MB): the exact CPU engine, 1.28-1.37x faster than plain torch on 2 vCPUs. requirements.txt brings it
# on x86-64, requirements-speed.txt elsewhere. On by default because CPU hosts are this image's main use; set it to 0
# for a smaller image (e.g. the CUDA one): it is then uninstalled in the same layer.
ARG WITH_OPENVINO=1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# OpenCV (pulled in by supervision) needs libGL and glib at import time.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 --shell /usr/sbin/nologin app \
    && mkdir -p /cache \
    && chown app:app /cache

WORKDIR /app

COPY requirements.txt requirements-speed.txt ./
RUN if [ -n "${TORCH_INDEX_URL}" ]; then export PIP_EXTRA_INDEX_URL="${TORCH_INDEX_URL}"; fi \
    && pip install --no-cache-dir -r requirements.txt \
    && if [ "${WITH_OPENVINO}" = "1" ]; then pip install --no-cache-dir -r requirements-speed.txt; \
       else pip uninstall -y openvino; fi

COPY --chown=app:app app.py ./
COPY --chown=app:app rfdetr_demo ./rfdetr_demo
COPY --chown=app:app examples ./examples
COPY --chown=app:app web/package.json web/package-lock.json web/ort-pin.json ./web/
COPY --chown=app:app web/src ./web/src
COPY --from=web --chown=app:app /web/node_modules ./web/node_modules

# Listen on all interfaces inside the container (the host decides what is published with -p).
# Caches live in one volume: RF-DETR weights (RF_HOME), Hub downloads (HF_HOME), cached example results and
# OpenVINO exports (XDG_CACHE_HOME/rfdetr_demo/engines), so a restarted container neither downloads nor exports again.
ENV RFDETR_DEMO_HOST=0.0.0.0 \
    RFDETR_DEMO_PORT=7860 \
    RF_HOME=/cache/rfdetr \
    HF_HOME=/cache/huggingface \
    TORCH_HOME=/cache/torch \
    XDG_CACHE_HOME=/cache \
    GRADIO_EXAMPLES_CACHE=/cache/gradio_examples \
    GRADIO_TEMP_DIR=/tmp/gradio \
    MPLCONFIGDIR=/tmp/matplotlib

USER 1000:1000
VOLUME ["/cache"]
EXPOSE 7860

# The first start may download weights; give it time before failures count.
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
    CMD ["python", "-m", "rfdetr_demo.healthcheck"]

CMD ["python", "app.py"]
