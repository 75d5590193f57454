# Multi-stage build: the release binary on a slim Debian, run as a non-root user.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY probes ./probes
COPY certs ./certs
RUN cargo build --release --locked --bin probe

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin probe
COPY --from=build /src/target/release/probe /usr/local/bin/probe
COPY probes /etc/iap-probe/probes
USER 10001:10001
WORKDIR /etc/iap-probe
ENTRYPOINT ["/usr/local/bin/probe"]
CMD ["run", "--config", "/etc/iap-probe/probe.toml"]
