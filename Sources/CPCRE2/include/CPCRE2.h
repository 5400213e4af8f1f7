// Debian's PCRE2 (libpcre2-dev), 8-bit code units: the regex engine behind Kong's ngx.re (PCRE), used
// for the plugins' regex fields (cors origins, and later bot-detection and request-transformer).
#ifndef CPCRE2_H
#define CPCRE2_H
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif
