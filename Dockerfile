# One image, every role: `ampd worker|admin-api|operator|migrate` and `ampctl`.
#   docker build -t amp:dev --build-arg AMPD_VERSION=dev .
# .git is in the build context on purpose: vergen compiles `git describe` in (and falls
# back to "unknown" without it).
# RUNTIME_BASE: the image the binaries land on. e2e/node/images.sh sets a locally built
# Debian bookworm there (nothing can be pulled on the CI node); everyone else keeps
# distroless.
ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12:nonroot
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
 && install -D -m 0755 target/release/ampd /out/ampd \
 && install -D -m 0755 target/release/ampctl /out/ampctl

FROM ${RUNTIME_BASE}
# Packagers may pin what `ampd --version` reports (images are tagged with it: the
# chart's AmpWorkerFleet expects the worker image tag as the version).
# Empty values are ignored by ampd (the compiled-in build info stays).
ARG AMPD_VERSION=""
ARG AMPD_COMMIT_SHA=""
ARG AMPD_COMMIT_TIMESTAMP=""
ARG AMPD_BUILD_DATE=""
ENV AMPD_VERSION=${AMPD_VERSION} \
    AMPD_COMMIT_SHA=${AMPD_COMMIT_SHA} \
    AMPD_COMMIT_TIMESTAMP=${AMPD_COMMIT_TIMESTAMP} \
    AMPD_BUILD_DATE=${AMPD_BUILD_DATE}
COPY --from=build /out/ampd /out/ampctl /usr/local/bin/
USER 65532:65532
EXPOSE 1610 8080 8081
ENTRYPOINT ["/usr/local/bin/ampd"]
CMD ["--help"]
