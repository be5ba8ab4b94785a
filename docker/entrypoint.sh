#!/bin/sh
# Start the service over $LSR_INDEX; extra arguments go to `lsr serve`.
set -eu
: "${LSR_INDEX:?set LSR_INDEX to an index directory}"
exec lsr serve --index "$LSR_INDEX" --host "${LSR_HOST:-0.0.0.0}" --port "${LSR_PORT:-8000}" --workers "${LSR_WORKERS:-1}" "$@"
