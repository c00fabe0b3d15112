# One image for the webhook and the issuer; the Deployments pick the command.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY webhook ./webhook
COPY issuer ./issuer
COPY pkiwarden ./pkiwarden
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
USER 65532:65532
ENTRYPOINT ["pkiwarden"]
CMD ["--help"]
