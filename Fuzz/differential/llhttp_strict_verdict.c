/* Second opinion for the request parser (Fuzz/differential.sh): Debian's llhttp built in strict mode
 * (LLHTTP_STRICT_MODE=1, no lenient flags) prints, for each input file (the fuzz-http-request input format:
 * 4 control bytes, then the client stream), the verdict in the same format as fuzz-http-request's
 * GW_FUZZ_VERDICT=1 mode: one line per message head "M <method> <framing> ka=<0|1>", its body length
 * "B <n>", "E" at message end, and a last line "upgrade", "error <reason>" or "eof clean|truncated". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "llhttp.h"

static int on_headers_complete(llhttp_t *p) {
    const char *framing = (p->flags & F_CHUNKED) ? "chunked" : (p->flags & F_CONTENT_LENGTH) ? "length" : "none";
    if (p->flags & F_CONTENT_LENGTH && !(p->flags & F_CHUNKED))
        printf("M %s %s %llu ka=%d\n", llhttp_method_name(p->method), framing,
               (unsigned long long)p->content_length, llhttp_should_keep_alive(p));
    else
        printf("M %s %s ka=%d\n", llhttp_method_name(p->method), framing, llhttp_should_keep_alive(p));
    return 0;
}
static unsigned long long body;
static int on_body(llhttp_t *p, const char *at, size_t n) { (void)p; (void)at; body += n; return 0; }
static int on_message_complete(llhttp_t *p) {
    (void)p;
    if (body) printf("B %llu\n", body);
    body = 0;
    printf("E\n");
    return 0;
}

int main(int argc, char **argv) {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_headers_complete = on_headers_complete;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
    static char buf[1 << 20];
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        printf("== %s\n", argv[i]);
        if (n < 4) { printf("eof clean\n"); continue; }
        llhttp_t p;
        llhttp_init(&p, HTTP_REQUEST, &s);
        body = 0;
        llhttp_errno_t e = llhttp_execute(&p, buf + 4, n - 4);
        if (e == HPE_PAUSED_UPGRADE) printf("upgrade\n");
        else if (e != HPE_OK) printf("error %s\n", llhttp_get_error_reason(&p));
        else {
            e = llhttp_finish(&p);
            /* between messages: clean; in a message: truncated */
            printf("eof %s\n", e == HPE_OK ? "clean" : "truncated");
        }
    }
    return 0;
}
