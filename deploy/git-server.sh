#!/bin/sh
# The git server's entrypoint: seed the configuration repository on first start (from the
# sample files baked into the image), then serve every repository under /srv/git over git://.
# Pushes are accepted (receive-pack) so a deployment can be edited with a plain `git push`.
set -e
repo=/srv/git/config-repo.git
if [ ! -f "$repo/HEAD" ]; then
  git init --quiet --bare --initial-branch=main "$repo"
  git --git-dir="$repo" --work-tree=/seed add --all
  git -c user.name=keel -c user.email=keel@localhost --git-dir="$repo" --work-tree=/seed \
    commit --quiet --message "Sample configuration"
fi
exec git daemon --reuseaddr --export-all --enable=receive-pack --informative-errors \
  --base-path=/srv/git --listen=0.0.0.0 --port=9418 /srv/git
