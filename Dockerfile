# syntax=docker/dockerfile:1
# One image for the three services (accounts, scheduling, visits) and the `doorstep` tool;
# docker-compose.yml picks the service by `command`.
# Build stage: the Swift toolchain CI tests with (Tests/Integration/DeploymentTests checks that the tag
# matches `swift --version`), on the Debian release CI runs, with the C libraries' headers.
FROM swift:6.3.1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends libprotobuf-c-dev libnghttp2-dev libsqlite3-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN for product in accounts scheduling visits doorstep; do \
      swift build -c release --static-swift-stdlib --product "$product" || exit 1; \
    done \
 && mkdir -p /out \
 && cp .build/release/accounts .build/release/scheduling .build/release/visits .build/release/doorstep /out/

# Runtime stage: slim Debian with the shared C libraries only, non-root.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libprotobuf-c1 libnghttp2-14 libsqlite3-0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home /data doorstep \
 && mkdir -p /data && chown doorstep /data
COPY --from=build /out/ /usr/local/bin/
# The commit the image was built from, shown by each service as doorstep_build_info on
# /metrics: docker build --build-arg DOORSTEP_COMMIT=$(git rev-parse --short HEAD) .
ARG DOORSTEP_COMMIT=unknown
ENV DOORSTEP_BUILD_COMMIT=$DOORSTEP_COMMIT
USER doorstep
VOLUME ["/data"]
EXPOSE 50051 50052 50053
