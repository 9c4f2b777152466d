#!/usr/bin/env bash
# Builds the portable migfleet-agent for Linux GPU hosts: cargo-zigbuild against glibc 2.17,
# so the binary runs on RHEL 7-era hosts up to today and needs nothing but glibc (NVML is
# dlopen'ed at run time). Checks each build: no glibc symbol version above 2.17, no
# dynamic library outside glibc, stripped size at most 3 MiB.
#
#   scripts/build-agent.sh [OUT_DIR]        (default: dist/)
#
# Needs: cargo-zigbuild (`cargo install cargo-zigbuild`), zig (`pip install ziglang`),
# binutils (objdump). aarch64 is built when its rustup target is installed
# (`rustup target add aarch64-unknown-linux-gnu`).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
mkdir -p "$out"

max_bytes=$((3 * 1024 * 1024))
glibc=2.17
targets=(x86_64-unknown-linux-gnu)
if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then
  targets+=(aarch64-unknown-linux-gnu)
else
  echo "build-agent: aarch64-unknown-linux-gnu not installed; building x86_64 only" >&2
fi

fail() { echo "build-agent: $*" >&2; exit 1; }

for target in "${targets[@]}"; do
  arch=${target%%-*}
  cargo zigbuild --quiet --profile dist -p migfleet-agent --target "$target.$glibc"
  bin="target/$target/dist/migfleet-agent"
  [ -f "$bin" ] || fail "$bin was not built"

  # Highest GLIBC_x.y symbol version the binary asks for.
  newest=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1)
  if [ -n "$newest" ] && [ "$(printf '%s\n%s\n' "$glibc" "$newest" | sort -V | tail -n1)" != "$glibc" ]; then
    fail "$target: needs GLIBC_$newest, above $glibc"
  fi
  # Every DT_NEEDED entry must be part of glibc.
  needed=$(objdump -p "$bin" | awk '/NEEDED/ {print $2}')
  for lib in $needed; do
    case "$lib" in
      libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*.so.*) ;;
      *) fail "$target: links $lib, which is not part of glibc" ;;
    esac
  done
  # And the loader agrees, where it can run the binary.
  if [ "$arch" = "$(uname -m)" ] && command -v ldd >/dev/null; then
    extra=$(ldd "$bin" | grep -Ev 'linux-vdso|ld-linux|lib(c|m|dl|pthread|rt)\.so' || true)
    [ -z "$extra" ] || fail "$target: ldd lists more than glibc: $extra"
  fi
  size=$(stat -c %s "$bin")
  [ "$size" -le "$max_bytes" ] || fail "$target: $size bytes, above the 3 MiB budget"

  cp "$bin" "$out/migfleet-agent-$arch-linux-gnu"
  (cd "$out" && sha256sum "migfleet-agent-$arch-linux-gnu" > "migfleet-agent-$arch-linux-gnu.sha256")
  echo "$out/migfleet-agent-$arch-linux-gnu: $size bytes, GLIBC <= ${newest:-none}, needs: $(echo $needed | tr '\n' ' ')"
done
