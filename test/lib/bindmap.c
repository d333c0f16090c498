/* libbindmap: an LD_PRELOAD library for tests and benchmarks that makes a
 * process bind a listening address other than the one it was told, so that
 * a proxy can take the address everybody dials.
 *
 *   TALLY_BINDMAP=127.0.0.1:7621=127.0.0.1:7731,127.0.0.1:7521=127.0.0.1:7741
 *
 * A bind(2) to an IPv4 address and port on the left of a pair binds the one
 * on the right instead; every other bind is left alone.
 *
 * Why: a tallyd's --raft and --listen addresses are the ones its peers and
 * the clients dial (they are in the Raft configuration every node shares,
 * and a node checks them against its own --peer entry). To put a delay
 * proxy (test/lib/delay-proxy) in front of node j on every link, node j
 * must accept its connections somewhere else: under this library it binds
 * the remapped port, and the proxy listens on the configured one and
 * forwards there. The configuration stays the one a real deployment has.
 *
 * A malformed TALLY_BINDMAP makes every bind fail with EINVAL and says so on
 * stderr, rather than silently running without the proxy in the path. */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define BINDMAP__MAX 32

struct bindmap__pair {
    struct sockaddr_in from; /* the address asked for */
    struct sockaddr_in to;   /* the address bound instead */
};

static struct bindmap__pair bindmap__pairs[BINDMAP__MAX];
static int bindmap__n;
static bool bindmap__bad; /* TALLY_BINDMAP could not be parsed */
static int (*bindmap__real_bind)(int, const struct sockaddr *, socklen_t);

static bool bindmap__parse_addr(const char *s, size_t len, struct sockaddr_in *out)
{
    char buf[64];
    const char *colon;
    char *end;
    if (len == 0 || len >= sizeof buf) {
        return false;
    }
    memcpy(buf, s, len);
    buf[len] = '\0';
    colon = strrchr(buf, ':');
    if (colon == NULL) {
        return false;
    }
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || port <= 0 || port > 65535) {
        return false;
    }
    buf[colon - buf] = '\0';
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, buf, &out->sin_addr) == 1;
}

__attribute__((constructor)) static void bindmap__init(void)
{
    const char *spec = getenv("TALLY_BINDMAP");
    bindmap__real_bind = (int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "bind");
    if (spec == NULL || *spec == '\0') {
        return;
    }
    const char *p = spec;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma == NULL ? strlen(p) : (size_t)(comma - p);
        const char *eq = memchr(p, '=', len);
        if (bindmap__n == BINDMAP__MAX || eq == NULL ||
            !bindmap__parse_addr(p, (size_t)(eq - p), &bindmap__pairs[bindmap__n].from) ||
            !bindmap__parse_addr(eq + 1, len - (size_t)(eq - p) - 1, &bindmap__pairs[bindmap__n].to)) {
            fprintf(stderr, "libbindmap: bad TALLY_BINDMAP entry '%.*s' (want A:P=A:P, at most %d)\n",
                    (int)len, p, BINDMAP__MAX);
            bindmap__bad = true;
            return;
        }
        bindmap__n++;
        p += len;
        if (*p == ',') {
            p++;
        }
    }
}

/* Exported although the build hides symbols by default (-fvisibility=hidden). */
__attribute__((visibility("default"))) int bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (bindmap__real_bind == NULL) {
        errno = ENOSYS;
        return -1;
    }
    if (bindmap__bad) {
        errno = EINVAL;
        return -1;
    }
    if (addr != NULL && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        for (int i = 0; i < bindmap__n; i++) {
            const struct bindmap__pair *m = &bindmap__pairs[i];
            if (in->sin_port == m->from.sin_port && in->sin_addr.s_addr == m->from.sin_addr.s_addr) {
                return bindmap__real_bind(fd, (const struct sockaddr *)&m->to, sizeof m->to);
            }
        }
    }
    return bindmap__real_bind(fd, addr, len);
}
