#!/bin/bash
# Makes a small container file tree and packs it the way vzdump does for a container backup to
# a dump directory storage (GNU tar run with PVE's flags), so the import can be tested against
# what Proxmox VE really writes. Usage:
#
#   make-ct-tar.sh WORKDIR [VMID] [STAMP] [none|zst|gz|lzo]
#
# Writes WORKDIR/tree/ (the container root), WORKDIR/conf/etc/vzdump/{pct.conf,pct.fw} and
# WORKDIR/vzdump-lxc-VMID-STAMP.tar[.zst|.gz|.lzo]; prints the archive path. Extended
# attributes, ACLs, file capabilities and a socket need python3; device nodes and foreign
# owners need root. What could not be made is listed on stderr as "skipped: ...".
set -euo pipefail

work=${1:?usage: make-ct-tar.sh WORKDIR [VMID] [STAMP] [none|zst|gz|lzo]}
vmid=${2:-100}
stamp=${3:-2024_01_31-12_00_00}
comp=${4:-none}

tree="$work/tree"
conf="$work/conf"
rm -rf "$tree" "$conf"
mkdir -p "$tree" "$conf/etc/vzdump"

skip() { echo "skipped: $*" >&2; }

cat > "$conf/etc/vzdump/pct.conf" <<CONF
#test container
arch: amd64
cores: 1
hostname: ct$vmid
memory: 512
net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:01,ip=dhcp,type=veth
ostype: debian
rootfs: local-lvm:vm-$vmid-disk-0,size=8G
swap: 512
CONF
printf '[OPTIONS]\nenable: 1\n\n[RULES]\nIN ACCEPT -p tcp -dport 22\n' > "$conf/etc/vzdump/pct.fw"

# A tree with the shapes a container root has: nested directories with enough entries for
# readdir order to differ from name order, all file types, special mode bits, hardlinks in
# different directories, a sparse file, fractional mtimes and times before 1970.
cd "$tree"
mkdir -p etc/apt/sources.list.d usr/bin usr/lib/x86_64-linux-gnu usr/share/doc/pkg var/log \
  var/lib/empty home/user/.config tmp var/tmp dev root srv/data
for i in $(seq 1 40); do printf 'line %s\n' "$i" > "etc/file$i.conf"; done
printf '127.0.0.1 localhost\n' > etc/hosts
printf 'ct%s\n' "$vmid" > etc/hostname
printf 'deb http://deb.debian.org/debian bookworm main\n' > etc/apt/sources.list
: > etc/apt/sources.list.d/empty.list
for n in alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu; do
  printf '#!/bin/sh\necho %s\n' "$n" > "usr/bin/$n"
  chmod 755 "usr/bin/$n"
done
# ~300 KiB of varied data (deterministic)
awk 'BEGIN { for (i = 0; i < 20000; i++) printf "%08d %s\n", i * 7919 % 100003, "payload" }' \
  > usr/lib/x86_64-linux-gnu/libdata.so.1
ln -s libdata.so.1 usr/lib/x86_64-linux-gnu/libdata.so
ln -s ../../etc/hosts usr/share/doc/pkg/hosts-link
printf 'changelog\n' > usr/share/doc/pkg/changelog
chmod 4755 usr/bin/alpha
chmod 2755 usr/bin/beta
chmod 1777 tmp var/tmp
printf 'x\n' > tmp/excluded-by-vzdump
# hardlinks across directories
printf 'shared content\n' > srv/data/original
ln srv/data/original usr/bin/linked
ln srv/data/original etc/linked-too
# sparse file: 8 MiB with data at 1 MiB and at the end
truncate -s 8M srv/data/sparse.img
printf 'in the middle' | dd of=srv/data/sparse.img bs=1 seek=1048576 conv=notrunc status=none
printf 'at the end' | dd of=srv/data/sparse.img bs=1 seek=8388598 conv=notrunc status=none
printf 'log\n' > var/log/syslog
mkfifo var/lib/fifo
printf 'secret\n' > root/.bash_history
chmod 600 root/.bash_history
chmod 700 root
printf 'user file\n' > home/user/.config/settings
printf 'zzz\n' > home/user/zzz

if [ "$(id -u)" = 0 ]; then
  mknod dev/null c 1 3
  mknod dev/loop0 b 7 0
  chown -R 1000:1000 home/user
  chown 0:5 var/log/syslog
else
  skip "device nodes and foreign owners (not root)"
fi

if command -v python3 > /dev/null; then
  python3 - "$tree" <<'PY' || echo "skipped: some extended attributes / ACLs ($?)" >&2
import os, socket, struct, sys
root = sys.argv[1]
p = lambda rel: os.path.join(root, rel)
def acl(entries):  # system.posix_acl_* value: version 2, (tag u16, perm u16, id u32)*
    return struct.pack('<I', 2) + b''.join(struct.pack('<HHI', t, m, i) for t, m, i in entries)
UNDEF = 0xffffffff
ok = True
try:
    os.setxattr(p('etc/hosts'), 'user.comment', b'hosts file')
    os.setxattr(p('etc/hosts'), 'user.binary', bytes([0, 1, 2, 255]))
    os.setxattr(p('usr/share/doc'), 'user.dir', b'on a directory')
except OSError as e:
    print('skipped: user xattrs:', e, file=sys.stderr)
try:
    # vfs_cap_data revision 2: cap_net_bind_service permitted + effective
    caps = struct.pack('<IIIII', 0x02000001, 1 << 10, 0, 0, 0)
    os.setxattr(p('usr/bin/gamma'), 'security.capability', caps)
except OSError as e:
    print('skipped: file capability:', e, file=sys.stderr)
try:
    # user::rw- user:0:r-- group::r-- group:0:rw- mask::rw- other::r--
    os.setxattr(p('etc/file1.conf'), 'system.posix_acl_access',
                acl([(1, 6, UNDEF), (2, 4, 0), (4, 4, UNDEF), (8, 6, 0), (0x10, 6, UNDEF),
                     (0x20, 4, UNDEF)]))
    # default ACL on a directory: user::rwx user:0:r-x group::r-x mask::r-x other::---
    os.setxattr(p('srv/data'), 'system.posix_acl_default',
                acl([(1, 7, UNDEF), (2, 5, 0), (4, 5, UNDEF), (0x10, 5, UNDEF), (0x20, 0, UNDEF)]))
except OSError as e:
    print('skipped: ACLs:', e, file=sys.stderr)
try:
    s = socket.socket(socket.AF_UNIX)
    s.bind(p('var/lib/socket'))
    s.close()
except OSError as e:
    print('skipped: socket:', e, file=sys.stderr)
PY
else
  skip "extended attributes, ACLs, file capabilities and the socket (no python3)"
fi

# fractional and pre-1970 mtimes, set last (children before their directories)
touch -h -d '@1700000000.123456789' etc/hosts usr/lib/x86_64-linux-gnu/libdata.so
touch -d '@-305121599.75' etc/hostname
find . -depth ! -path ./etc/hosts ! -path ./etc/hostname ! -path ./usr/lib/x86_64-linux-gnu/libdata.so \
  -exec touch -h -d '@1706702400.5' {} +
cd - > /dev/null

out="$work/vzdump-lxc-$vmid-$stamp.tar"
# The command of pve-container's VZDump/LXC.pm with pve-storage's common tar flags.
tar cpf - --totals --one-file-system -p --sparse --numeric-owner --acls --xattrs \
  --xattrs-include=user.* --xattrs-include=security.capability \
  --warning=no-file-ignored --warning=no-xattr-write --one-file-system \
  --warning=no-file-ignored \
  --directory="$conf" ./etc/vzdump/pct.conf ./etc/vzdump/pct.fw \
  --directory="$tree" --no-anchored --exclude=lost+found \
  --anchored --exclude=./tmp/?* --exclude=./var/tmp/?* --exclude=./var/run/?*.pid \
  ./ > "$out" 2> "$work/tar.err" || { cat "$work/tar.err" >&2; exit 1; }

case "$comp" in
  none) ;;
  zst) zstd -q --rm -f "$out"; out="$out.zst" ;;
  gz) gzip -f "$out"; out="$out.gz" ;;
  lzo) lzop -U -f "$out"; out="$out.lzo" ;;
  *) echo "unknown compression $comp" >&2; exit 2 ;;
esac
echo "$out"
