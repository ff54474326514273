# The worker: CUDA-capable libtorch from PyPI's torch wheel (what tch links against), the
# worker binary built against that same wheel, and its CUDA libraries at run time.
#   docker build -f deploy/containers/worker.Dockerfile -t sweep-worker .
FROM python:3.11-slim-bookworm AS torch
RUN python -m venv /opt/torch && /opt/torch/bin/pip install --no-cache-dir torch==2.11.0

FROM rust:1.95-bookworm AS build
COPY --from=torch /opt/torch /opt/torch
ENV LIBTORCH=/opt/torch/lib/python3.11/site-packages/torch \
    LD_LIBRARY_PATH=/opt/torch/lib/python3.11/site-packages/torch/lib
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sweep-worker --bin sweep-worker

FROM python:3.11-slim-bookworm
COPY --from=torch /opt/torch /opt/torch
COPY --from=build /src/target/release/sweep-worker /usr/local/bin/sweep-worker
RUN useradd --system --uid 10001 --no-create-home sweep
ENV LD_LIBRARY_PATH=/opt/torch/lib/python3.11/site-packages/torch/lib
USER 10001
EXPOSE 9465
ENTRYPOINT ["/usr/local/bin/sweep-worker"]
CMD ["run", "--device", "auto"]
