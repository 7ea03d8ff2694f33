#!/bin/sh
# Print what this image runs (package, Python, Ray, torch), then run the given command.
set -e
l2i --version
exec "$@"
