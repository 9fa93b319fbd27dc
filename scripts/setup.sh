#!/bin/sh
# Sets up everything vmwu needs on a fresh Debian machine, idempotently:
# Debian packages (installed when root, otherwise named), npm dependencies, and
# the compiled CLI. Every README command starts with this.
set -eu
cd "$(dirname "$0")/.."

major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$major" -lt 20 ]; then
  echo "vmwu needs Node.js 20 or newer (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# tool:package pairs; the tools are what vmwu runs, the packages what provides them.
need="qemu-system-x86_64:qemu-system-x86 mkfs.erofs:erofs-utils hmmsearch:hmmer qemu-img:qemu-utils mke2fs:e2fsprogs cpio:cpio setpriv:util-linux parallel:parallel mmdebstrap:mmdebstrap syslinux:syslinux mcopy:mtools mkfs.vfat:dosfstools chromium:chromium slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge slurmdbd:slurmdbd mariadbd:mariadb-server sshd:openssh-server ip:iproute2 ssh-keygen:openssh-client openssl:openssl sshfs:sshfs nsenter:util-linux passt:passt strace:strace cc:gcc skopeo:skopeo umoci:umoci zstd:zstd docker-registry:docker-registry htpasswd:apache2-utils musl-gcc:musl-tools cwltool:cwltool toil-cwl-runner:toil mpirun.openmpi:openmpi-bin mpicc.openmpi:libopenmpi-dev"
# GROMACS runs natively only on a CPU with SSE4.2 (Debian's sse4.2-support refuses
# to install elsewhere); examples/gromacs then compares with native runs, and
# without it with the committed reference values.
grep -qw sse4_2 /proc/cpuinfo && need="$need gmx:gromacs"
# A Debian base built by a user other than root (mmdebstrap's unshare mode) needs these;
# root installs them too, so every user of this machine can build one.
rootless_need="newuidmap:uidmap genext2fs:genext2fs"
need="$need $rootless_need"
missing=""
for pair in $need; do
  tool=${pair%%:*}; pkg=${pair#*:}
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || [ -x "/sbin/$tool" ] || missing="$missing $pkg"
done
# cc builds the bases' static guest helper (guest/clone-helper.c) against glibc's static libraries.
dpkg -s libc6-dev >/dev/null 2>&1 || missing="$missing libc6-dev"
# mmdebstrap's unshare mode maps the build's ids onto the user's ranges, found by user name.
if [ "$(id -u)" != 0 ]; then
  me=$(id -un)
  noranges=""
  for f in /etc/subuid /etc/subgid; do
    cut -d: -f1 "$f" 2>/dev/null | grep -qxF "$me" || noranges="$noranges $f"
  done
  if [ -n "$noranges" ]; then
    echo "setup: no range for $me in$noranges, which \`vmwu base build debian\` without root needs — as root run: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 $me (a range no other user has)" >&2
  fi
fi
# The tiny base downloads the Debian cloud kernel with apt-get download: apt must know it.
apt_ready() { apt-cache policy linux-image-cloud-amd64 2>/dev/null | grep -q 'Candidate: [0-9]'; }

if [ -n "$missing" ] || ! apt_ready; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: apt-get update${missing:+ and install:$missing}" >&2
    apt-get update -qq
    if [ -n "$missing" ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
  else
    [ -n "$missing" ] && echo "setup: missing Debian packages:$missing — as root run: apt-get install$missing" >&2
    rootless=""
    for pair in $rootless_need; do
      case " $missing " in *" ${pair#*:} "*) rootless="$rootless ${pair#*:}" ;; esac
    done
    [ -n "$rootless" ] && echo "setup: \`vmwu base build debian\` as $(id -un) (without root) needs$rootless — sudo apt-get install$rootless, or run sh scripts/setup.sh as root" >&2
    apt_ready || echo "setup: apt has no package lists — as root run: apt-get update" >&2
    exit 1
  fi
fi

# When vmwu runs as root, QEMU and passt run as this unprivileged user (src/vm/qemu-user.ts).
if [ "$(id -u)" = 0 ] && ! getent passwd vmwu-qemu >/dev/null; then
  echo "setup: adding the system user vmwu-qemu (QEMU runs as it when vmwu is root)" >&2
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin vmwu-qemu
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "setup: compiling" >&2
# From a clean dist/, so a deleted source never leaves a stale compiled test behind.
rm -rf dist
npx tsc -p tsconfig.json
node scripts/bundle-cli.mjs
node scripts/build-web.mjs
