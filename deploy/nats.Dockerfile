# Debian's nats-server (the config bus) with the shared libraries `ldd` lists, on an empty base.
FROM scratch
COPY rootfs/ /
USER 65532:65532
EXPOSE 4222 8222
ENTRYPOINT ["/usr/sbin/nats-server"]
CMD ["--port", "4222", "--http_port", "8222"]
