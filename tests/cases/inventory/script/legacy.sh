#!/bin/sh
# Old-style dynamic inventory: no _meta, answers --host per host.
case "$1" in
  --list) echo '{"legacy": ["old1", "old2"], "trainers": {"hosts": ["old2"]}}' ;;
  --host) if [ "$2" = old1 ]; then echo '{"ansible_user": "legacy", "via_host": true}'; else echo '{}'; fi ;;
esac
