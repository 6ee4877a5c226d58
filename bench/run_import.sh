#!/bin/sh
# Import benchmark: `pbskit import vzdump` of a generated VMA against the machine's ceiling
# (per 4 MiB chunk: zero check, SHA-256, zstd level 1 on THREADS threads, measured in the same
# run on the same image) and against `restic backup` of the same raw image. Not part of CI.
#
#   bench/run_import.sh [WORKDIR]       (default: ./bench-work-import)
#
# IMPORT_GIB (default 2): disk size; the first half is zero clusters, the second half
# compressible pseudo-random data. THREADS (default 2).
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$PWD/bench-work-import}
BUILD=${BUILD:-$SRC/build-bench}
IMPORT_GIB=${IMPORT_GIB:-2}
THREADS=${THREADS:-2}
mkdir -p "$WORK"

cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$THREADS" --target import_bench pbskit
BENCH=$BUILD/bench/import_bench
command -v restic >/dev/null || apt-get install -y restic >/dev/null
TIME="/usr/bin/time -f %e_s_%M_KiB"

vma=$WORK/vzdump-qemu-900-2026_01_01-00_00_00.vma
[ -f "$vma" ] && [ -f "$WORK/image.raw" ] || "$BENCH" gen-vma "$WORK" "$IMPORT_GIB"
cat "$vma" "$WORK/image.raw" > /dev/null            # page cache warm

echo "== import vzdump (${IMPORT_GIB} GiB disk, $THREADS threads)"
"$BENCH" ceiling "$WORK/image.raw" "$THREADS"
rm -rf "$WORK/store" "$WORK/etc"
"$BUILD/pbskit" --config-dir "$WORK/etc" datastore create bench "$WORK/store" >/dev/null
sync                                                # no writeback of the new store during the run
printf 'pbskit import vzdump: '
$TIME "$BUILD/pbskit" --config-dir "$WORK/etc" import vzdump "$vma" --store "$WORK/store" 2>&1 | tail -1

echo "== restic backup of the same raw image"
export RESTIC_PASSWORD=bench
rm -rf "$WORK/restic"
restic init -q -r "$WORK/restic"
printf 'restic backup: '; $TIME restic -q -r "$WORK/restic" backup "$WORK/image.raw" 2>&1 | tail -1
