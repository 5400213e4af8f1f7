// Compiles Debian's llhttp source (node-llhttp) into this target; see include/CLLHTTP.h.
#include "/usr/share/llhttp/http.c"
