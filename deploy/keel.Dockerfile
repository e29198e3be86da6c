# The keel binary (registry, config centre, gateway, standalone) on an empty base.
# Built by `cargo xtask docker` from the static glibc binary in a staged context; no shell, no curl.
FROM scratch
COPY rootfs/ /
COPY keel /usr/local/bin/keel
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt HOME=/data
USER 65532:65532
WORKDIR /data
VOLUME /data
EXPOSE 8761 8888 8080
# Exec form only (scratch has no shell), so the port is fixed: 8761 suits `registry` and
# `standalone`; deployments override the test for `config` (8888) and `gateway` (8080).
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/keel", "health", "--timeout", "2s", "http://127.0.0.1:8761"]
ENTRYPOINT ["/usr/local/bin/keel"]
CMD ["standalone"]
