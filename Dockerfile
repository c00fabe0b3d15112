# One image for the webhook and the issuer; the Deployments pick the command.
# BASE is any image with Python 3.11 and its venv module: the public default,
# or the Debian base that `make image` builds locally (deploy/image/build.sh).
ARG BASE=python:3.11-slim

FROM ${BASE} AS build
# Two virtual environments: /opt/build holds the build tools and never ships;
# /opt/pkiwarden holds what runs. Both install exactly the versions and file
# hashes of the lock files, and only wheels, so nothing is compiled here.
# kubernetes ships an asyncio twin of its whole client (about 70 MB) that
# nothing imports; it is left out.
COPY deploy/image/build-requirements.txt deploy/image/requirements.txt /lock/
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
        -r /lock/build-requirements.txt \
    && python3 -m venv --without-pip /opt/pkiwarden \
    && /opt/build/bin/pip --python /opt/pkiwarden/bin/python install --no-cache-dir \
        --require-hashes --only-binary=:all: -r /lock/requirements.txt \
    && rm -rf /opt/pkiwarden/lib/python3*/site-packages/kubernetes/aio
# The sources come after the dependencies, so a code change rebuilds one layer.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY webhook ./webhook
COPY issuer ./issuer
COPY pkiwarden ./pkiwarden
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/build/bin/pip --python /opt/pkiwarden/bin/python install --no-cache-dir --no-deps \
        /wheels/*.whl \
    && /opt/build/bin/pip --python /opt/pkiwarden/bin/python check

FROM ${BASE}
COPY --from=build /opt/pkiwarden /opt/pkiwarden
# The root filesystem is read-only in the Deployments: byte code was compiled
# at install time, and nothing may try to write more.
ENV PATH=/opt/pkiwarden/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
ENTRYPOINT ["pkiwarden"]
CMD ["--help"]
