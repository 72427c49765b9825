#!/usr/bin/env bash
# A sparse file dropped into Inbox/: disk space of its copy in Needs_Action/ and the time
# from the drop to the note, with the release binary.
#
#   bench/sparse_copy.sh [SIZE]    # SIZE for truncate, default 2G
#
# Uses $AIE_BIN if set, else builds HEAD with bench/build-rev.sh. The file has 64 KiB of
# data at its start, its middle and its end; the rest is holes. Prints one table row.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${AIE_BIN:-$("$here/build-rev.sh" HEAD)}
size=${1:-2G}
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
v=$tmp/vault
mkdir -p "$v/Inbox"
"$bin" watch filesystem --vault "$v" --max-size 1TiB 2>"$tmp/log" &
pid=$!
until grep -qs "watching " "$tmp/log"; do sleep 0.05; done

f=$v/Inbox/.disk.img
truncate -s "$size" "$f"
bytes=$(stat -c %s "$f")
for off in 0 $((bytes / 2)) $((bytes - 65536)); do
    head -c 65536 /dev/urandom | dd of="$f" bs=65536 seek="$off" oflag=seek_bytes conv=notrunc status=none
done
sync "$f"
start=$(date +%s%N)
mv "$f" "$v/Inbox/disk.img"
until grep -qs -- "-> Needs_Action/" "$tmp/log"; do sleep 0.01; done
end=$(date +%s%N)
copy=$(find "$v/Needs_Action" -name 'FILE_*_disk.img')
alloc() { echo $(($(stat -c %b "$1") * $(stat -c %B "$1"))); }
printf '| %s | %s | %s | %s | %.2f s |\n' \
    "$bytes" "$(alloc "$v/Inbox/disk.img")" "$(alloc "$copy")" "$(stat -c %s "$copy")" \
    "$(echo "($end - $start) / 1000000000" | bc -l)"
