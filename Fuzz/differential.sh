#!/usr/bin/env bash
# Differential check of the request parser (issue #13): every input of a corpus directory (default: the
# fuzz-http-request working corpus, Fuzz/.work/http-request, plus the seeds) goes through GWHTTP's parser
# (fuzz-http-request with GW_FUZZ_VERDICT=1) and through Debian's llhttp built in strict mode
# (differential/llhttp_strict_verdict.c); the verdicts (message heads with method/framing/keep-alive, body
# lengths, message ends, upgrade / error / EOF) are compared. Prints the disagreements grouped by
# (our last line, llhttp's last line) with a count and one example file each.
set -u
cd "$(dirname "$0")"
differential/build.sh || exit 1
dirs=("$@"); [ ${#dirs[@]} -eq 0 ] && dirs=(.work/http-request corpus/http-request)

files=$(find "${dirs[@]}" -type f | sort)
python3 differential/compare.py $files
