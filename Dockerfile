# syntax=docker/dockerfile:1
# iap-probe: the release binary on distroless (glibc, CA certificates, no shell, no package
# manager), running as the image's non-root user. Build: docker build -t iap-probe .
#
# Volumes (all optional; the Kubernetes manifests in deploy/kubernetes mount them):
#   /etc/iap-probe/config   probe.toml (read-only)             -> --config /etc/iap-probe/config/probe.toml
#   /etc/iap-probe/probes   probe definitions (the shipped ones are baked in; mount to replace)
#   /var/run/secrets/iap    credential files named by probe.toml ({ file = "..." }), read-only
#   /var/lib/iap-probe      writable: [history] path (SQLite history and alert state)
# Port 9464: `probe daemon --listen 0.0.0.0:9464` serves /metrics, /healthz, /results/latest.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY probes ./probes
COPY certs ./certs
RUN cargo build --release --locked --bin probe \
    && mkdir -p /out/state

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/probe /usr/local/bin/probe
COPY probes /etc/iap-probe/probes
COPY --from=build --chown=65532:65532 /out/state /var/lib/iap-probe
USER 65532:65532
WORKDIR /var/lib/iap-probe
VOLUME ["/var/lib/iap-probe"]
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/probe"]
CMD ["run", "--config", "/etc/iap-probe/config/probe.toml"]
