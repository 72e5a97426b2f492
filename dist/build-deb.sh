#!/usr/bin/env bash
# Builds the Debian package greyproxy_<version>_<arch>.deb into target/debian/ with cargo-deb
# (`cargo install cargo-deb`): both binaries, both systemd units (ExecStart pointing at
# /usr/bin), the sysusers snippet creating the `greyproxy` group, man pages and shell
# completions generated from the binaries. Extra arguments go to `cargo deb`.
#
# PROFILE=dev builds an unoptimised package (quick, to check its layout with `dpkg -c`).
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${PROFILE:-release}"
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
cargo build --profile "$profile" -p greyproxyd -p greytui
bin="target/$dir"
out="$bin/dist"
rm -rf "$out"
mkdir -p "$out/man" "$out/completions" "$out/systemd"

"$bin/greyproxyd" man --dir "$out/man"
"$bin/greytui" man > "$out/man/greytui.1"
gzip -9n "$out"/man/*.1

for prog in greyproxyd greytui; do
  "$bin/$prog" completions bash > "$out/completions/$prog.bash"
  "$bin/$prog" completions zsh > "$out/completions/_$prog"
  "$bin/$prog" completions fish > "$out/completions/$prog.fish"
done

for unit in greyproxyd.service greyproxyd.user.service; do
  sed 's#/usr/local/bin/greyproxyd#/usr/bin/greyproxyd#g' "systemd/$unit" > "$out/systemd/$unit"
done

cargo deb -p greyproxyd --no-build --profile "$profile" "$@"
