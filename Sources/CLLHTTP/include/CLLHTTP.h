// Debian's llhttp (package node-llhttp), the parser Node.js uses. Not vendored: the C sources are
// compiled from /usr/share/llhttp by llhttp_*.c, so `apt-get install node-llhttp` is a build
// dependency (the Makefile installs it).
#ifndef CLLHTTP_H
#define CLLHTTP_H
#include "/usr/share/include/llhttp/llhttp.h"
#endif
