# spogate-agent, spogate-refsvc, spogate-gen and spogate-echo on Debian 12,
# built and run from Debian's packages only. HAProxy itself comes from the
# official haproxy image (see compose.yaml).
FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      make gcc libc6-dev pkg-config libev-dev libprotobuf-c-dev protobuf-c-compiler \
      libgrpc-dev libhiredis-dev libjansson-dev libjwt-dev libyaml-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY spoa ./spoa
COPY config ./config
COPY proto ./proto
COPY tests/services ./tests/services
COPY tests/bench ./tests/bench
RUN make BUILD=/build -j"$(nproc)" \
      /build/bin/spogate-agent /build/bin/spogate-gen /build/bin/spogate-echo \
      /build/bin/spogate-refsvc

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      libev4 libprotobuf-c1 libgrpc29 libhiredis0.14 libjansson4 libjwt0 libyaml-0-2 \
      libssl3 dnsmasq-base ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/bin/ /usr/local/bin/
USER nobody
ENTRYPOINT []
