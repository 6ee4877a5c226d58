#!/bin/sh
# Verify / GC benchmark: pbskit against the machine's ceilings and against restic and borg on the
# same data. Not part of CI; it takes the machine's CPU and several GiB of disk.
#
#   bench/run.sh [WORKDIR]        (default: ./bench-work; sizes via env, see below)
#
# GC_CHUNKS (default "100000 1000000"), VERIFY_GIB (4), VERIFY_CHUNK (65536; fixed chunks are 64 KiB..4 MiB), THREADS (2).
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=${1:-$PWD/bench-work}
BUILD=${BUILD:-$SRC/build-bench}
GC_CHUNKS=${GC_CHUNKS:-"100000 1000000"}
VERIFY_GIB=${VERIFY_GIB:-4}
VERIFY_CHUNK=${VERIFY_CHUNK:-65536}
THREADS=${THREADS:-2}
mkdir -p "$WORK"

cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD" -j"$THREADS" --target verify_gc_bench pbskit
BENCH=$BUILD/bench/verify_gc_bench
[ -x "$BENCH" ] || BENCH=$BUILD/verify_gc_bench
gcc -O2 -o "$WORK/verify-ceiling" "$SRC/../shared/tools/verify-ceiling.c" -lzstd -lcrypto -lz -pthread

if ! command -v restic >/dev/null || ! command -v borg >/dev/null; then
  apt-get install -y restic borgbackup >/dev/null
fi
TIME="/usr/bin/time -f %e_s_%M_KiB"

echo "== GC"
for n in $GC_CHUNKS; do
  d=$WORK/gc-$n
  [ -d "$d/.chunks" ] || "$BENCH" gen-gc "$d" "$n"
  "$BENCH" gc "$d" >/dev/null                      # warm the dentry/inode caches
  "$BENCH" gc-ceiling "$d"
  "$BENCH" gc "$d"
done

echo "== verify (${VERIFY_GIB} GiB, ${VERIFY_CHUNK}-byte chunks, $THREADS threads)"
v=$WORK/verify
[ -d "$v/.chunks" ] || "$BENCH" gen-verify "$v" "$VERIFY_GIB" "$VERIFY_CHUNK"
find "$v/.chunks" -type f -name '????????????????????????????????????????????????????????????????' > "$WORK/chunks.list"
xargs cat < "$WORK/chunks.list" > /dev/null         # page cache warm
printf 'verify-ceiling decoded_bytes seconds bad: '; "$WORK/verify-ceiling" "$THREADS" "$WORK/chunks.list"
"$BENCH" verify "$v" "$THREADS"

echo "== verify memory against the chunk count (64 KiB chunks that compress to a few bytes)"
for n in $GC_CHUNKS; do
  d=$WORK/verify-many-$n
  [ -d "$d/.chunks" ] || "$BENCH" gen-verify-many "$d" "$n"
  "$BENCH" verify "$d" "$THREADS"
done

echo "== restic / borg on the same image"
img=$WORK/image.raw
if [ ! -f "$img" ]; then
  snap=$(ls "$v/vm/900" | grep T | head -1)
  "$BUILD/pbskit" restore --store "$v" "vm/900/$snap" drive-scsi0.img.fidx "$img"
fi
export RESTIC_PASSWORD=bench BORG_PASSPHRASE=bench BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
if [ ! -d "$WORK/restic" ]; then
  restic init -q -r "$WORK/restic"
  restic -q -r "$WORK/restic" backup "$img"
fi
if [ ! -d "$WORK/borg" ]; then
  borg init -e none "$WORK/borg"
  borg create "$WORK/borg::a" "$img"
fi
printf 'restic check --read-data: '; $TIME restic -q -r "$WORK/restic" check --read-data 2>&1 | tail -1
printf 'borg check --verify-data: '; $TIME borg check --verify-data "$WORK/borg" 2>&1 | tail -1
printf 'restic prune: '; $TIME restic -q -r "$WORK/restic" prune 2>&1 | tail -1
printf 'borg compact: '; $TIME borg compact "$WORK/borg" 2>&1 | tail -1

echo "== tape catalog lookup (100 tapes: .index caches vs loading every media catalog)"
cmake --build "$BUILD" -j"$THREADS" --target tape_catalog_bench
TAPE_BENCH=$BUILD/bench/tape_catalog_bench
[ -x "$TAPE_BENCH" ] || TAPE_BENCH=$BUILD/tape_catalog_bench
TMPDIR=$WORK "$TAPE_BENCH" 100 200 20000 5
