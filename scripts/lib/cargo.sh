# Sourced by the scripts that run the project's binaries: cargo says where they are, so
# CARGO_TARGET_DIR, build.target-dir in .cargo/config.toml and --target all work (a
# hard-coded target/debug/... would run a missing or stale binary).
#   cargo_build_bins ARGS...  cargo build ARGS (quietly), then prints "NAME PATH" for
#                             every binary it produced, fresh or not
#   cargo_bin NAME ARGS...    builds with ARGS and prints the path of binary NAME
#   cargo_target_dir          prints the target directory (cargo metadata)
# Each returns non-zero with cargo's own error on stderr when the build fails.

cargo_build_bins() {
  # json-render-diagnostics: compiler errors still reach stderr as text.
  cargo build -q --message-format=json-render-diagnostics "$@" | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "bin" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])
'
}

cargo_bin() {
  local name=$1 built path
  shift
  built=$(cargo_build_bins "$@") || return 1
  path=$(awk -v n="$name" '$1 == n {print $2}' <<< "$built")
  if [ -z "$path" ]; then
    echo "cargo: no binary $name from: cargo build $*" >&2
    return 1
  fi
  echo "$path"
}

cargo_target_dir() {
  cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
