#!/bin/sh
# wordlen.sh: the example work item handler.
# Reads one word from stdin, pretends to work for a moment, prints its length.
set -eu
IFS= read -r word || [ -n "$word" ]
sleep 0.05
printf '%s: %d letters\n' "$word" "${#word}"
