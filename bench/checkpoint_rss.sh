#!/bin/sh
# checkpoint_rss.sh: peak resident set of a trainer checkpoint's save and
# load for a full fine-tune of a SmolLM2-135M-shape model (134.5M
# parameters; parameters + AdamW moments = 1.6 GB), beyond the state
# itself (VmHWM deltas, reset between phases), and the whole process's
# peak (/usr/bin/time %M). It runs recipe's TestCheckpointRSS, which
# writes 1.6 GB to $TMPDIR.
#
# BEFORE=<git revision> also runs the same test on that revision (an
# export of it, with this tree's test file copied in), for a before/after
# comparison; the streaming checkpoint landed after commit aadca48.
#
#   sh bench/checkpoint_rss.sh
#   BEFORE=aadca48 sh bench/checkpoint_rss.sh
set -eu
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { # $1 label, $2 source tree
	(cd "$2" && go test -c -o "$tmp/$1.test" ./recipe)
	(cd "$2/recipe" && CKPT_RSS=1 /usr/bin/time -f "whole process peak %M KB" \
		"$tmp/$1.test" -test.run '^TestCheckpointRSS$' -test.v 2>&1 |
		grep -E 'parameters|peak' | sed "s/^ */$1: /")
}

if [ -n "${BEFORE:-}" ]; then
	mkdir "$tmp/before"
	git archive "$BEFORE" | tar -x -C "$tmp/before"
	cp recipe/checkpoint_rss_test.go "$tmp/before/recipe/"
	run before "$tmp/before"
fi
run after .
