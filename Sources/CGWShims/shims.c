#define _GNU_SOURCE
#include "CGWShims.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

int gw_accept4(int fd, struct sockaddr *addr, unsigned int *len, int flags) { return accept4(fd, addr, (socklen_t *)len, flags); }
int gw_pipe2(int fds[2], int flags) { return pipe2(fds, flags); }
int gw_send_datagrams(int fd, const void *base, const long *ends, long first, int count) {
    struct mmsghdr m[64];
    struct iovec v[64];
    if (count > 64) count = 64;
    long start = first > 0 ? ends[first - 1] : 0;
    for (int i = 0; i < count; i++) {
        long end = ends[first + i];
        v[i].iov_base = (char *)base + start;
        v[i].iov_len = (size_t)(end - start);
        memset(&m[i], 0, sizeof m[i]);
        m[i].msg_hdr.msg_iov = &v[i];
        m[i].msg_hdr.msg_iovlen = 1;
        start = end;
    }
    int n;
    do { n = sendmmsg(fd, m, (unsigned int)count, MSG_NOSIGNAL | MSG_DONTWAIT); } while (n < 0 && errno == EINTR);
    return n;
}
int gw_memfd_create(const char *name) { return memfd_create(name, MFD_CLOEXEC); }
int gw_clear_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
}
void gw_unblock_all_signals(void) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static volatile sig_atomic_t gw_wake_fd = -1;
static uint64_t gw_pending;   // bit per signal; updated with __atomic ops only

static void gw_handler(int signo) {
    int saved = errno;
    __atomic_or_fetch(&gw_pending, (uint64_t)1 << signo, __ATOMIC_SEQ_CST);
    int fd = gw_wake_fd;
    if (fd >= 0) {
        char c = (char)signo;
        ssize_t r = write(fd, &c, 1);   // nonblocking pipe; a full pipe already means "wake up"
        (void)r;
    }
    errno = saved;
}

static const int gw_signals[] = { SIGHUP, SIGINT, SIGTERM, SIGQUIT, SIGUSR1, SIGUSR2, SIGCHLD, SIGWINCH };

void gw_signals_install(int wake_fd) {
    gw_wake_fd = wake_fd;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = gw_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < sizeof gw_signals / sizeof gw_signals[0]; i++) sigaction(gw_signals[i], &sa, NULL);
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

void gw_signals_reset_to_default(void) {
    gw_wake_fd = -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (size_t i = 0; i < sizeof gw_signals / sizeof gw_signals[0]; i++) sigaction(gw_signals[i], &sa, NULL);
    __atomic_store_n(&gw_pending, 0, __ATOMIC_SEQ_CST);
}

uint64_t gw_signals_take(void) { return __atomic_exchange_n(&gw_pending, 0, __ATOMIC_SEQ_CST); }

void gw_set_pdeathsig(int signo) { prctl(PR_SET_PDEATHSIG, signo); }

// Process titles the nginx way (ngx_setproctitle.c): the title overwrites the argv area. argv and
// the environment strings are contiguous at the top of the stack; on the first call the environment
// strings that directly follow argv are copied to the heap (environ points to the copies, so getenv
// keeps working) and the title may use their room too. Without that, `gateway start` run from PATH
// leaves 14 bytes and every process would be titled "gateway: mast". Also sets the comm name (what
// `ps -o comm` and /proc/PID/comm show, 15 chars).
extern char **environ;
static char *gw_title_start, *gw_title_end;   // [start, end): writable title area, end exclusive

static void gw_title_init(int argc, char **argv) {
    if (gw_title_start || argc <= 0 || !argv || !argv[0]) return;
    char *start = argv[0];
    char *end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc && argv[i] == end; i++) end = argv[i] + strlen(argv[i]) + 1;
    char *args_end = end;
    size_t n = 0;
    if (environ) {
        while (environ[n]) n++;
        for (size_t i = 0; i < n && environ[i] == end; i++) end = environ[i] + strlen(environ[i]) + 1;
        for (size_t i = 0; i < n; i++) {
            if (environ[i] >= args_end && environ[i] < end) {
                char *copy = strdup(environ[i]);
                if (!copy) { end = args_end; break; }   // keep the environment intact: argv room only
                environ[i] = copy;
            }
        }
    }
    gw_title_start = start;
    gw_title_end = end;
}

void gw_set_process_title(int argc, char **argv, const char *title) {
    gw_title_init(argc, argv);
    if (gw_title_start) {
        size_t room = (size_t)(gw_title_end - gw_title_start) - 1;   // keep a final NUL
        size_t n = strlen(title);
        if (n > room) n = room;
        memcpy(gw_title_start, title, n);
        memset(gw_title_start + n, 0, room - n + 1);
    }
    prctl(PR_SET_NAME, title, 0, 0, 0);
}

#include <malloc.h>
uint64_t gw_heap_bytes(void) {
    struct mallinfo2 m = mallinfo2();
    return (uint64_t)m.uordblks;
}
