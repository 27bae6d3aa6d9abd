# kvgate's image: `kvgate serve` (the default command) or `kvgate worker`.
#   docker build -t kvgate:local .                    frontend, and workers with the mocker
#   docker build -t kvgate-sglang:local --target sglang --build-arg SGLANG_IMAGE=lmsysorg/sglang:latest .
#                                                     workers that start SGLang (GPU nodes)
# The build stage packs kvgate as npm publishes it and installs that tarball without
# devDependencies, which compiles the native addon; the runtime stages copy the result.

ARG SGLANG_IMAGE=lmsysorg/sglang:latest

FROM node:20-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake ninja-build \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# The sources come next; the addon is compiled once, by the tarball's install below.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm pack --pack-destination /tmp \
 && mkdir -p /opt/kvgate && cd /opt/kvgate \
 && echo '{ "name": "kvgate-image", "private": true }' > package.json \
 && npm install /tmp/kvgate-*.tgz --omit=dev --no-audit --no-fund \
 && node_modules/.bin/kvgate --version

FROM node:20-bookworm-slim AS kvgate
COPY --from=build /opt/kvgate /opt/kvgate
ENV PATH=/opt/kvgate/node_modules/.bin:$PATH
USER node
EXPOSE 8000
ENTRYPOINT ["kvgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]

# Workers that start SGLang themselves: SGLang's own image, with Node and kvgate added
# (kvgate worker --engine sglang runs `python3 -m sglang.launch_server`).
FROM ${SGLANG_IMAGE} AS sglang
COPY --from=build /usr/local/bin/node /usr/local/bin/node
COPY --from=build /opt/kvgate /opt/kvgate
ENV PATH=/opt/kvgate/node_modules/.bin:$PATH
ENTRYPOINT ["kvgate"]
CMD ["worker", "--engine", "sglang", "--help"]

# The default target (last stage built by a plain `docker build`): the kvgate image.
FROM kvgate
