#!/bin/sh
# Container import benchmark: `pbskit import vzdump` of a generated container tar against the
# machine's ceiling (buzhash chunking + SHA-256 + zstd level 1 of the same bytes on THREADS
# threads, measured in the same run) and against `restic backup` of the same files extracted.
# Not part of CI.
#
#   bench/run_import_lxc.sh [WORKDIR]       (default: ./bench-work-import-lxc)
#
# IMPORT_GIB (default 2): file data in the tar; THREADS (default 2); ZST=0 skips the import of
# the same tar compressed with zstd (vzdump's default compression).
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$PWD/bench-work-import-lxc}
BUILD=${BUILD:-$SRC/build-bench}
IMPORT_GIB=${IMPORT_GIB:-2}
THREADS=${THREADS:-2}
mkdir -p "$WORK"

cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$THREADS" --target import_lxc_bench pbskit
BENCH=$BUILD/bench/import_lxc_bench
command -v restic >/dev/null || apt-get install -y restic >/dev/null
TIME="/usr/bin/time -f %e_s_%M_KiB"

tar=$WORK/vzdump-lxc-901-2026_01_01-00_00_00.tar
[ -f "$tar" ] || "$BENCH" gen-tar "$WORK" "$IMPORT_GIB"
zst=$WORK/vzdump-lxc-902-2026_01_01-00_00_00.tar.zst
if [ "${ZST:-1}" != 0 ] && [ ! -f "$zst" ]; then
  command -v zstd >/dev/null || apt-get install -y zstd >/dev/null
  zstd -q -T"$THREADS" -c "$tar" > "$zst"
fi
if [ ! -d "$WORK/tree" ]; then
  mkdir -p "$WORK/tree"
  tar xf "$tar" -C "$WORK/tree" --exclude=./etc/vzdump
fi
cat "$tar" > /dev/null            # page cache warm

echo "== import vzdump container tar (${IMPORT_GIB} GiB of files, $THREADS threads)"
"$BENCH" ceiling "$tar" "$THREADS"
rm -rf "$WORK/store" "$WORK/etc"
"$BUILD/pbskit" --config-dir "$WORK/etc" datastore create bench "$WORK/store" >/dev/null
sync                                                # no writeback of the new store during the run
printf 'pbskit import vzdump: '
$TIME "$BUILD/pbskit" --config-dir "$WORK/etc" import vzdump "$tar" --store "$WORK/store" \
  --tmpdir "$WORK" --time-zone UTC 2>&1 | tail -1
if [ "${ZST:-1}" != 0 ]; then
  cat "$zst" > /dev/null
  rm -rf "$WORK/store" "$WORK/etc"
  "$BUILD/pbskit" --config-dir "$WORK/etc" datastore create bench "$WORK/store" >/dev/null
  sync
  printf 'pbskit import vzdump (.tar.zst): '
  $TIME "$BUILD/pbskit" --config-dir "$WORK/etc" import vzdump "$zst" --store "$WORK/store" \
    --tmpdir "$WORK" --time-zone UTC 2>&1 | tail -1
fi

echo "== restic backup of the same files"
export RESTIC_PASSWORD=bench
rm -rf "$WORK/restic"
restic init -q -r "$WORK/restic"
printf 'restic backup: '; $TIME restic -q -r "$WORK/restic" backup "$WORK/tree" 2>&1 | tail -1
