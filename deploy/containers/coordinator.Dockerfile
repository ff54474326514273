# The coordinator: no libtorch, just the binary on a slim base.
#   docker build -f deploy/containers/coordinator.Dockerfile -t sweep-coordinator .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# No tch here: the coordinator's build never compiles libtorch.
RUN cargo build --release --locked -p sweep-coordinator --bin sweep-coordinator

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home sweep \
    && mkdir -p /var/lib/sweep/blobs \
    && chown 10001 /var/lib/sweep/blobs
# The blob store (uploaded data files, models). Mount a volume here, or point it at a
# bucket (SWEEP_BLOB_STORE=s3://bucket/prefix) when several coordinators share a database.
ENV SWEEP_BLOB_STORE=/var/lib/sweep/blobs
COPY --from=build /src/target/release/sweep-coordinator /usr/local/bin/sweep-coordinator
USER 10001
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/sweep-coordinator"]
CMD ["serve"]
