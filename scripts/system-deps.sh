#!/bin/sh
# Debian packages Cove needs on the host. Installs them when we are root,
# otherwise says exactly what to install. `system-deps.sh test` adds what only
# the tests need (`make test`), so `make run` does not pull in a browser.
set -e
missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
# Sandboxes run the host's /usr read-only: its git is the one `sandbox.git` runs.
command -v git >/dev/null 2>&1 || missing="$missing git"
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
# `cove ssh` runs the system's OpenSSH client (and the SSH tests drive it).
command -v ssh >/dev/null 2>&1 || missing="$missing openssh-client"
# Sandbox egress (veth pairs, network namespaces, one nftables table).
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
command -v curl >/dev/null 2>&1 || missing="$missing curl"
[ -x /usr/bin/python3 ] || missing="$missing python3"
# Each sandbox's disk is an ext4 image (mkfs, tune2fs; e2fsck and resize2fs to grow).
PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.ext4 >/dev/null 2>&1 || missing="$missing e2fsprogs"
if [ "$1" = test ]; then
    # The preview browser test drives headless Chromium (no browser download).
    command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
fi
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$missing python3-venv"
# Images: Debian base images are built with mmdebstrap; OCI images are pulled
# and unpacked with skopeo + umoci (tests push to a loopback docker-registry).
command -v mmdebstrap >/dev/null 2>&1 || missing="$missing mmdebstrap"
command -v skopeo >/dev/null 2>&1 || missing="$missing skopeo"
command -v umoci >/dev/null 2>&1 || missing="$missing umoci"
command -v docker-registry >/dev/null 2>&1 || missing="$missing docker-registry"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
else
    echo "Cove needs these Debian packages:$missing" >&2
    echo "install them as root:  apt-get install$missing" >&2
    exit 1
fi
