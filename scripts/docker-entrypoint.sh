#!/bin/sh
# The container's entry command: `serve` (the default) and `scheduler` first apply the database
# migrations, then replace this shell with the bot so that it receives SIGTERM directly. Any
# other command (check, migrate, roles ..., demo, --help) runs as given.
#
# Outside a container it works the same: PYTHON selects the interpreter (default: python).
set -eu
python="${PYTHON:-python}"
if [ "$#" -eq 0 ]; then
  set -- serve
fi
case "$1" in
  serve | scheduler)
    "$python" -m bot migrate
    exec "$python" -m bot "$@"
    ;;
  *)
    exec "$python" -m bot "$@"
    ;;
esac
