#!/bin/sh
# The container's entry command: runs `python -m bot` with the given command (default: serve)
# as PID 1's replacement, so that the bot receives SIGTERM directly. `serve` and `scheduler`
# apply the database migrations themselves at start, once (PostgreSQL: under an advisory lock,
# so replicas may start together); `migrate` only migrates; check, roles, audit, --help run as
# given.
#
# Outside a container it works the same: PYTHON selects the interpreter (default: python).
set -eu
python="${PYTHON:-python}"
if [ "$#" -eq 0 ]; then
  set -- serve
fi
exec "$python" -m bot "$@"
