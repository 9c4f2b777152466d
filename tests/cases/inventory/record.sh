#!/usr/bin/env bash
# Records reference outputs from ansible-core for every case dir under tests/cases/inventory.
# Needs `ansible-inventory` and `ansible` on PATH (pip install ansible-core).
# Usage: tests/cases/inventory/record.sh [case-dir ...]
#
# case.txt lines:  source: PATH   (an -i source, relative to the case dir; repeatable, in order)
#                  graph: GROUP   (also record `--graph GROUP` into out/graph-GROUP.txt)
#                  vault-password-file: PATH   (passed on, relative to the case dir)
#                  pattern: PAT   (record `ansible PAT --list-hosts` into out/hosts-N.txt, N = 1-based pattern index;
#                                  comma-separated terms starting with @ are passed as `--limit @FILE`)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
if [ "$#" -eq 0 ]; then set -- */; fi
export ANSIBLE_NOCOLOR=1 ANSIBLE_DEPRECATION_WARNINGS=0 ANSIBLE_LOCALHOST_WARNING=0
# Run from an empty dir so ansible never picks up group_vars/ next to the working directory.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
: > "$work/ansible.cfg"
export ANSIBLE_CONFIG="$work/ansible.cfg"
for case in "$@"; do
  case="${case%/}"
  dir="$here/$case"
  [ -f "$dir/case.txt" ] || continue
  args=()
  graphs=()
  patterns=()
  while IFS= read -r line; do
    case "$line" in
      source:*) args+=(-i "$dir/$(echo "${line#source:}" | xargs)") ;;
      vault-password-file:*) args+=(--vault-password-file "$dir/$(echo "${line#vault-password-file:}" | xargs)") ;;
      graph:*) graphs+=("$(echo "${line#graph:}" | xargs)") ;;
      pattern:*) p="${line#pattern:}"; p="${p# }"; patterns+=("$p") ;;
    esac
  done < "$dir/case.txt"
  rm -rf "$dir/out"
  mkdir -p "$dir/out"
  (cd "$work" && ansible-inventory "${args[@]}" --list) > "$dir/out/list.json"
  (cd "$work" && ansible-inventory "${args[@]}" --graph) > "$dir/out/graph.txt"
  for g in "${graphs[@]+"${graphs[@]}"}"; do
    (cd "$work" && ansible-inventory "${args[@]}" --graph "$g") > "$dir/out/graph-$g.txt"
  done
  n=0
  for p in "${patterns[@]+"${patterns[@]}"}"; do
    n=$((n + 1))
    main=()
    limit=()
    if [[ "$p" == *@* ]]; then
      IFS=',' read -ra terms <<< "$p"
      for t in "${terms[@]}"; do
        if [[ "$t" == @* ]]; then limit+=(--limit "@$dir/${t#@}"); else main+=("$t"); fi
      done
      pat="$(IFS=','; echo "${main[*]:-all}")"
    else
      pat="$p"
    fi
    (cd "$work" && ansible "${args[@]}" "$pat" "${limit[@]+"${limit[@]}"}" --list-hosts 2>/dev/null || true) \
      | sed -n 's/^    //p' > "$dir/out/hosts-$n.txt"
  done
  echo "recorded $case: ${#patterns[@]} patterns"
done
