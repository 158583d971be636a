# syntax=docker/dockerfile:1
# Multi-stage build: a full Rust toolchain compiles, a slim Debian runs.
# The service package only: the fake Okta (crates/fake-okta) is a dev-dependency of the
# tests, so neither it nor its test keys reach the image. CI runs the same build command.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Dependencies first, so source edits do not rebuild them.
COPY Cargo.toml Cargo.lock build.rs ./
COPY crates/fake-okta/Cargo.toml crates/fake-okta/
RUN mkdir -p src crates/fake-okta/src/bin migrations/mysql migrations/sqlite \
    && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
    && echo '' > crates/fake-okta/src/lib.rs \
    && echo 'fn main() {}' > crates/fake-okta/src/bin/fake-okta.rs \
    && cargo build --release --locked -p efs-iam \
    && rm -rf src
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked -p efs-iam \
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
