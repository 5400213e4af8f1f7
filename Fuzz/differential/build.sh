#!/bin/sh
# Builds the strict-mode llhttp verdict tool from Debian's sources (node-llhttp: /usr/share/llhttp).
cd "$(dirname "$0")" && cc -O1 -DLLHTTP_STRICT_MODE=1 -I/usr/share/include/llhttp -o llhttp-strict-verdict \
    llhttp_strict_verdict.c /usr/share/llhttp/llhttp.c /usr/share/llhttp/api.c /usr/share/llhttp/http.c
