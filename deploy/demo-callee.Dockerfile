# demo-callee (a service built on the Keel SDK) on an empty base; `keel health` is its healthcheck.
FROM scratch
COPY rootfs/ /
COPY keel demo-callee /usr/local/bin/
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt HOME=/data DEMO_BIND=0.0.0.0:8080
USER 65532:65532
WORKDIR /data
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/keel", "health", "--timeout", "2s", "http://127.0.0.1:8080"]
ENTRYPOINT ["/usr/local/bin/demo-callee"]
