# syntax=docker/dockerfile:1
# Multi-stage build: a full Rust toolchain compiles, a slim Debian runs.
# Built without the `fake-okta` feature, so no test keys reach the image.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && mkdir -p migrations/mysql migrations/sqlite \
    && cargo build --release --locked --no-default-features \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --no-default-features \
    && strip target/release/efs-iam

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/efs-iam --create-home efs-iam
COPY --from=builder /src/target/release/efs-iam /usr/local/bin/efs-iam
USER 10001:10001
WORKDIR /var/lib/efs-iam
ENV EFS_IAM_LISTEN=0.0.0.0:8080 \
    EFS_IAM_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/efs-iam", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/efs-iam"]
CMD ["serve"]
