#!/bin/sh
# Installs the vmwu guest agent into an image you want to import with
# `vmwu base add`. Run it against the image's root filesystem (mounted, or a
# directory you will turn into the image), as the user that owns it:
#
#   sh guest/install-agent.sh /mnt/image-root
#
# It puts the agent at /vmwu/agent and starts it at boot: a systemd unit when the
# image uses systemd, an /etc/rc.local line otherwise. The agent runs the job from
# the disks vmwu attaches, then resets the VM. See docs/imported-images.md.
set -eu
root=${1:?usage: install-agent.sh IMAGE_ROOT}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$root/vmwu" "$root/job" "$root/app"
cp "$here/agent" "$root/vmwu/agent"
chmod 755 "$root/vmwu/agent"
if [ -d "$root/etc/systemd/system" ]; then
  cat > "$root/etc/systemd/system/vmwu-agent.service" <<'UNIT'
[Unit]
Description=vmwu guest agent: run the job on the attached disks, then reset
After=local-fs.target
DefaultDependencies=no

[Service]
Type=simple
ExecStart=/vmwu/agent
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
UNIT
  mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
  ln -sf ../vmwu-agent.service "$root/etc/systemd/system/multi-user.target.wants/vmwu-agent.service"
  echo "installed /vmwu/agent and vmwu-agent.service (enabled)"
else
  rc="$root/etc/rc.local"
  [ -f "$rc" ] || printf '#!/bin/sh\n' > "$rc"
  grep -q /vmwu/agent "$rc" || echo '/vmwu/agent &' >> "$rc"
  chmod 755 "$rc"
  echo "installed /vmwu/agent, started from /etc/rc.local"
fi
