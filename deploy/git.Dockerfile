# A git:// server for the config centre's repository: Debian's git and git-daemon (plus dash for
# the entrypoint) with the libraries `ldd` lists, on an empty base. The repository lives in the
# /srv/git volume and is seeded with the sample configuration on first start.
FROM scratch
COPY rootfs/ /
ENV HOME=/srv/git PATH=/usr/bin:/bin:/usr/lib/git-core GIT_EXEC_PATH=/usr/lib/git-core
USER 65532:65532
WORKDIR /srv/git
VOLUME /srv/git
EXPOSE 9418
HEALTHCHECK --interval=2s --timeout=3s --start-period=5s --retries=5 \
  CMD ["git", "ls-remote", "--heads", "git://127.0.0.1/config-repo.git"]
ENTRYPOINT ["/usr/local/bin/git-server"]
