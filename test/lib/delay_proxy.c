/* delay-proxy: a TCP proxy on 127.0.0.1 that delays each direction of every
 * connection by a fixed time plus jitter, optionally at a capped rate, so
 * that a cluster on one machine sees the round trips of a real network
 * (this kernel has no netem). Used by the benchmarks (bench/net.sh,
 * bench/matrix.sh with DELAY_MS) and tested by
 * test/integration/test_delay_proxy.py; docs/testing.md describes it.
 *
 *   delay-proxy [--delay-ms D[/R]] [--jitter-ms J[/R]] [--rate-bytes B[/R]]
 *               [--seed S] LISTEN_PORT=TARGET_PORT ...
 *
 * Every link listens on 127.0.0.1:LISTEN_PORT (0: any free port) and
 * forwards each accepted connection to 127.0.0.1:TARGET_PORT. A value
 * before the slash applies to the bytes from the accepting side to the
 * target ("forward"), the one after it to the answers ("reverse"); one value
 * applies to both. Once every link listens it prints "listen P -> T" per
 * link and then "ready" on stdout. SIGTERM or SIGINT ends it.
 *
 * How a chunk of bytes travels. Each read from one socket is one chunk. Its
 * release time is when a link of the capped rate would have finished
 * sending it (after the chunks before it), plus the delay, plus a jitter
 * drawn uniformly from [-J, +J]. A release time is never earlier than the
 * one of the chunk before it in the same direction: the bytes of a
 * connection stay in order, as TCP would deliver them, and jitter only
 * stretches gaps. Chunks wait in a queue per direction; a timerfd (not a
 * libuv timer, whose resolution is a millisecond) wakes the loop at the
 * head's release time. When a direction holds more than PROXY__HIGH_WATER
 * bytes not yet written, the proxy stops reading its source until half of
 * it has gone, so a slow reader makes the writer wait, as a real link
 * would, instead of growing the proxy's memory.
 *
 * Failure modes: a refused or failed connection to the target closes the
 * accepted one; a read error or a write error on either socket closes both
 * (queued bytes are dropped, as a broken link drops them); an end of stream
 * is passed on (shutdown of the other socket's write side) once everything
 * queued before it was written. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define PROXY__READ_SIZE (64 * 1024)        /* bytes asked for per read */
#define PROXY__SMALL_CHUNK (16 * 1024)      /* reads below this are copied */
#define PROXY__HIGH_WATER (32 * 1024 * 1024) /* unwritten bytes: stop reading */
#define PROXY__MAX_LINKS 64

/* The setting of one direction. */
struct proxy_shape {
    uint64_t delay_ns;      /* fixed delay of every chunk */
    uint64_t jitter_ns;     /* chunks move by up to this much either way */
    uint64_t rate_bytes_s;  /* cap in bytes per second; 0: none */
};

/* One read's bytes, queued until its release time, then written. */
struct proxy_dir;
struct proxy_chunk {
    struct proxy_chunk *next; /* next in the direction's queue */
    struct proxy_dir *dir;    /* the direction it travels */
    uv_write_t write;         /* the write to the destination */
    uint64_t release_ns;      /* uv_hrtime() at which it may be written */
    size_t len;               /* bytes in data */
    char data[];              /* the bytes */
};

struct proxy_conn;

/* One direction of one connection: bytes read from src, written to dst. */
struct proxy_dir {
    struct proxy_conn *conn;         /* owner */
    const struct proxy_shape *shape; /* forward or reverse setting */
    uv_tcp_t *src;                   /* socket read */
    uv_tcp_t *dst;                   /* socket written */
    struct proxy_chunk *head;        /* oldest chunk not yet written */
    struct proxy_chunk *tail;        /* newest chunk */
    struct proxy_chunk *spare;       /* full-size buffer for the next read */
    uint64_t last_release_ns;        /* release time of the newest chunk */
    uint64_t sent_until_ns;          /* when the rate-capped link is free */
    size_t unwritten;                /* bytes read and not yet written */
    bool reading;                    /* uv_read_start is in force */
    bool eof;                        /* src ended; pass it on when drained */
    bool shut;                       /* dst's write side was shut down */
    int tfd;                         /* timerfd of the head's release */
    uv_poll_t timer;                 /* watches tfd */
    uv_shutdown_t shutdown;          /* the shutdown of dst */
};

struct proxy_link {
    int listen_port;             /* as given; 0 until bound if asked for 0 */
    int target_port;             /* where connections go */
    uv_tcp_t server;             /* the listening socket */
    struct sockaddr_in target;   /* 127.0.0.1:target_port */
};

struct proxy_conn {
    struct proxy_link *link; /* the link it was accepted on */
    uv_tcp_t client;         /* accepted socket */
    uv_tcp_t upstream;       /* socket to the target */
    uv_connect_t connect;    /* the connection to the target */
    struct proxy_dir fwd;    /* client -> upstream */
    struct proxy_dir rev;    /* upstream -> client */
    bool closing;            /* proxy__conn_close was called */
    int open_handles;        /* handles not yet closed */
};

static struct proxy_shape proxy__fwd_shape, proxy__rev_shape;
static uint64_t proxy__rng = 0x9e3779b97f4a7c15u;
static uv_loop_t *proxy__loop;

/* xorshift64*: jitter needs no better randomness, and a seed repeats it. */
static uint64_t proxy__random(void)
{
    proxy__rng ^= proxy__rng >> 12;
    proxy__rng ^= proxy__rng << 25;
    proxy__rng ^= proxy__rng >> 27;
    return proxy__rng * 2685821657736338717u;
}

static void proxy__handle_closed(uv_handle_t *h);
static void proxy__dir_release(struct proxy_dir *d);

static void proxy__free_chunks(struct proxy_dir *d)
{
    struct proxy_chunk *c = d->head;
    while (c != NULL) {
        struct proxy_chunk *next = c->next;
        free(c);
        c = next;
    }
    d->head = d->tail = NULL;
    free(d->spare);
    d->spare = NULL;
}

/* Close both sockets and both timers; the connection is freed when the
 * last close callback has run. Chunks being written are freed by their
 * write callbacks (libuv cancels them with UV_ECANCELED). */
static void proxy__conn_close(struct proxy_conn *c)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    c->open_handles = 0;
    struct proxy_dir *dirs[2] = {&c->fwd, &c->rev};
    for (int i = 0; i < 2; i++) {
        struct proxy_dir *d = dirs[i];
        if (d->tfd >= 0) {
            uv_close((uv_handle_t *)&d->timer, proxy__handle_closed);
            c->open_handles++;
        }
    }
    uv_close((uv_handle_t *)&c->client, proxy__handle_closed);
    uv_close((uv_handle_t *)&c->upstream, proxy__handle_closed);
    c->open_handles += 2;
}

static void proxy__handle_closed(uv_handle_t *h)
{
    struct proxy_conn *c = h->data;
    if (--c->open_handles > 0) {
        return;
    }
    struct proxy_dir *dirs[2] = {&c->fwd, &c->rev};
    for (int i = 0; i < 2; i++) {
        proxy__free_chunks(dirs[i]);
        if (dirs[i]->tfd >= 0) {
            close(dirs[i]->tfd);
        }
    }
    free(c);
}

static void proxy__alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct proxy_conn *c = h->data;
    struct proxy_dir *d = (uv_tcp_t *)h == &c->client ? &c->fwd : &c->rev;
    if (d->spare == NULL) {
        d->spare = malloc(sizeof *d->spare + PROXY__READ_SIZE);
    }
    *buf = d->spare == NULL ? uv_buf_init(NULL, 0) : uv_buf_init(d->spare->data, PROXY__READ_SIZE);
}

static void proxy__read_stop(struct proxy_dir *d)
{
    if (d->reading) {
        uv_read_stop((uv_stream_t *)d->src);
        d->reading = false;
    }
}

static void proxy__read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void proxy__read_start(struct proxy_dir *d)
{
    if (!d->reading && !d->eof && !d->conn->closing) {
        if (uv_read_start((uv_stream_t *)d->src, proxy__alloc, proxy__read) != 0) {
            proxy__conn_close(d->conn);
            return;
        }
        d->reading = true;
    }
}

static void proxy__shutdown_done(uv_shutdown_t *req, int status)
{
    struct proxy_dir *d = req->data;
    struct proxy_conn *c = d->conn;
    if (status != 0 || (c->fwd.shut && c->rev.shut)) {
        proxy__conn_close(c); /* both ends said goodbye, or it failed */
    }
}

/* Pass src's end of stream on, once every byte before it was written. */
static void proxy__maybe_shutdown(struct proxy_dir *d)
{
    if (!d->eof || d->shut || d->unwritten > 0 || d->conn->closing) {
        return;
    }
    d->shut = true;
    d->shutdown.data = d;
    if (uv_shutdown(&d->shutdown, (uv_stream_t *)d->dst, proxy__shutdown_done) != 0) {
        proxy__conn_close(d->conn);
    }
}

static void proxy__written(uv_write_t *w, int status)
{
    /* Runs before the connection is freed even when it is closing: libuv
     * cancels pending writes (UV_ECANCELED) before any close callback. */
    struct proxy_chunk *ch = w->data;
    struct proxy_dir *d = ch->dir;
    d->unwritten -= ch->len;
    free(ch);
    if (status != 0) {
        proxy__conn_close(d->conn);
        return;
    }
    if (d->conn->closing) {
        return;
    }
    if (d->unwritten < PROXY__HIGH_WATER / 2) {
        proxy__read_start(d);
    }
    proxy__maybe_shutdown(d);
}

/* Arm the direction's timerfd for the head's release time. */
static void proxy__arm(struct proxy_dir *d)
{
    struct itimerspec its = {0};
    uint64_t at = d->head->release_ns;
    its.it_value.tv_sec = (time_t)(at / 1000000000u);
    its.it_value.tv_nsec = (long)(at % 1000000000u);
    if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0) {
        its.it_value.tv_nsec = 1; /* zero would disarm it */
    }
    if (timerfd_settime(d->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
        fprintf(stderr, "delay-proxy: timerfd_settime: %s\n", strerror(errno));
        proxy__conn_close(d->conn);
    }
}

static void proxy__timer_fired(uv_poll_t *p, int status, int events)
{
    (void)events;
    struct proxy_dir *d = (struct proxy_dir *)((char *)p - offsetof(struct proxy_dir, timer));
    uint64_t ticks;
    if (status != 0) {
        proxy__conn_close(d->conn);
        return;
    }
    if (read(d->tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN) {
        proxy__conn_close(d->conn);
        return;
    }
    proxy__dir_release(d);
}

/* Write every queued chunk whose release time has come; arm the timer for
 * the next one. */
static void proxy__dir_release(struct proxy_dir *d)
{
    uint64_t now = uv_hrtime();
    while (d->head != NULL && d->head->release_ns <= now && !d->conn->closing) {
        struct proxy_chunk *ch = d->head;
        d->head = ch->next;
        if (d->head == NULL) {
            d->tail = NULL;
        }
        ch->write.data = ch;
        uv_buf_t b = uv_buf_init(ch->data, (unsigned)ch->len);
        if (uv_write(&ch->write, (uv_stream_t *)d->dst, &b, 1, proxy__written) != 0) {
            d->unwritten -= ch->len;
            free(ch);
            proxy__conn_close(d->conn);
            return;
        }
    }
    if (d->head != NULL && !d->conn->closing) {
        proxy__arm(d);
    }
}

static uint64_t proxy__jittered(const struct proxy_shape *s)
{
    if (s->jitter_ns == 0) {
        return s->delay_ns;
    }
    uint64_t span = 2 * s->jitter_ns + 1;
    int64_t j = (int64_t)(proxy__random() % span) - (int64_t)s->jitter_ns;
    int64_t v = (int64_t)s->delay_ns + j;
    return v < 0 ? 0 : (uint64_t)v;
}

static void proxy__read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    struct proxy_conn *c = s->data;
    struct proxy_dir *d = (uv_tcp_t *)s == &c->client ? &c->fwd : &c->rev;
    if (n == 0 || c->closing) {
        return;
    }
    if (n == UV_EOF) {
        proxy__read_stop(d);
        d->eof = true;
        proxy__maybe_shutdown(d);
        return;
    }
    if (n < 0) {
        proxy__conn_close(c);
        return;
    }
    struct proxy_chunk *ch;
    size_t len = (size_t)n;
    if (len >= PROXY__SMALL_CHUNK) {
        ch = d->spare; /* keep the big buffer */
        d->spare = NULL;
    } else {
        ch = malloc(sizeof *ch + len); /* a small message: copy, keep the buffer */
        if (ch == NULL) {
            proxy__conn_close(c);
            return;
        }
        memcpy(ch->data, d->spare->data, len);
    }
    ch->len = len;
    ch->next = NULL;
    ch->dir = d;

    /* Release time: the rate-capped link's transmission end, plus the
     * delay and jitter, never before the chunk ahead of it. */
    uint64_t now = uv_hrtime();
    uint64_t sent = now;
    const struct proxy_shape *sh = d->shape;
    if (sh->rate_bytes_s > 0) {
        uint64_t start = d->sent_until_ns > now ? d->sent_until_ns : now;
        sent = start + (uint64_t)((double)len * 1e9 / (double)sh->rate_bytes_s);
        d->sent_until_ns = sent;
    }
    uint64_t release = sent + proxy__jittered(sh);
    if (release < d->last_release_ns) {
        release = d->last_release_ns;
    }
    d->last_release_ns = release;
    ch->release_ns = release;
    d->unwritten += len;

    bool was_empty = d->head == NULL;
    if (was_empty) {
        d->head = d->tail = ch;
    } else {
        d->tail->next = ch;
        d->tail = ch;
    }
    if (was_empty) {
        if (release <= now) {
            proxy__dir_release(d); /* no delay: write at once */
        } else {
            proxy__arm(d);
        }
    }
    if (d->unwritten > PROXY__HIGH_WATER) {
        proxy__read_stop(d);
    }
}

static int proxy__dir_init(struct proxy_conn *c, struct proxy_dir *d, uv_tcp_t *src, uv_tcp_t *dst,
                           const struct proxy_shape *shape)
{
    memset(d, 0, sizeof *d);
    d->conn = c;
    d->shape = shape;
    d->src = src;
    d->dst = dst;
    d->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (d->tfd < 0) {
        return -1;
    }
    if (uv_poll_init(proxy__loop, &d->timer, d->tfd) != 0) {
        close(d->tfd);
        d->tfd = -1;
        return -1;
    }
    d->timer.data = c; /* for proxy__handle_closed, like the sockets' */
    return 0;
}

static void proxy__connected(uv_connect_t *req, int status)
{
    struct proxy_conn *c = req->data;
    if (c->closing) {
        return;
    }
    if (status != 0) {
        proxy__conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->upstream, 1);
    struct proxy_dir *dirs[2] = {&c->fwd, &c->rev};
    for (int i = 0; i < 2; i++) {
        if (uv_poll_start(&dirs[i]->timer, UV_READABLE, proxy__timer_fired) != 0) {
            proxy__conn_close(c);
            return;
        }
    }
    proxy__read_start(&c->fwd);
    proxy__read_start(&c->rev);
}

static void proxy__accepted(uv_stream_t *server, int status)
{
    struct proxy_link *link = server->data;
    if (status != 0) {
        return;
    }
    struct proxy_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        return;
    }
    c->link = link;
    c->fwd.tfd = c->rev.tfd = -1;
    uv_tcp_init(proxy__loop, &c->client);
    uv_tcp_init(proxy__loop, &c->upstream);
    c->client.data = c->upstream.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->client) != 0 ||
        proxy__dir_init(c, &c->fwd, &c->client, &c->upstream, &proxy__fwd_shape) != 0 ||
        proxy__dir_init(c, &c->rev, &c->upstream, &c->client, &proxy__rev_shape) != 0) {
        proxy__conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->client, 1);
    c->connect.data = c;
    if (uv_tcp_connect(&c->connect, &c->upstream, (const struct sockaddr *)&link->target,
                       proxy__connected) != 0) {
        proxy__conn_close(c);
    }
}

static void proxy__signal(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

/* "D" or "D/R" in @arg: milliseconds (fractions allowed) or bytes. */
static bool proxy__parse_pair(const char *arg, double scale, uint64_t *fwd, uint64_t *rev)
{
    char *end;
    double a = strtod(arg, &end);
    double b = a;
    if (end == arg || a < 0) {
        return false;
    }
    if (*end == '/') {
        const char *r = end + 1;
        b = strtod(r, &end);
        if (end == r || b < 0) {
            return false;
        }
    }
    if (*end != '\0') {
        return false;
    }
    *fwd = (uint64_t)(a * scale + 0.5);
    *rev = (uint64_t)(b * scale + 0.5);
    return true;
}

static void proxy__usage(void)
{
    fprintf(stderr,
            "usage: delay-proxy [--delay-ms D[/R]] [--jitter-ms J[/R]] [--rate-bytes B[/R]]\n"
            "                   [--seed S] LISTEN_PORT=TARGET_PORT ...\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"delay-ms", required_argument, NULL, 'd'},
        {"jitter-ms", required_argument, NULL, 'j'},
        {"rate-bytes", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct proxy_link links[PROXY__MAX_LINKS];
    int n_links = 0, o, which = 0;
    bool ok = true;
    while ((o = getopt_long(argc, argv, "h", opts, &which)) != -1) {
        switch (o) {
        case 'd':
            ok = proxy__parse_pair(optarg, 1e6, &proxy__fwd_shape.delay_ns, &proxy__rev_shape.delay_ns);
            break;
        case 'j':
            ok = proxy__parse_pair(optarg, 1e6, &proxy__fwd_shape.jitter_ns, &proxy__rev_shape.jitter_ns);
            break;
        case 'r':
            ok = proxy__parse_pair(optarg, 1.0, &proxy__fwd_shape.rate_bytes_s,
                                   &proxy__rev_shape.rate_bytes_s);
            break;
        case 's':
            proxy__rng = strtoull(optarg, NULL, 0) | 1;
            break;
        default:
            proxy__usage();
        }
        if (!ok) {
            fprintf(stderr, "delay-proxy: bad value for --%s: %s\n", opts[which].name, optarg);
            proxy__usage();
        }
    }
    if (optind == argc) {
        proxy__usage();
    }
    signal(SIGPIPE, SIG_IGN);
    proxy__loop = uv_default_loop();
    for (int i = optind; i < argc; i++) {
        struct proxy_link *l = &links[n_links];
        if (n_links == PROXY__MAX_LINKS ||
            sscanf(argv[i], "%d=%d", &l->listen_port, &l->target_port) != 2 ||
            l->listen_port < 0 || l->listen_port > 65535 || l->target_port <= 0 ||
            l->target_port > 65535) {
            fprintf(stderr, "delay-proxy: bad link %s (LISTEN_PORT=TARGET_PORT, at most %d)\n",
                    argv[i], PROXY__MAX_LINKS);
            return 2;
        }
        struct sockaddr_in addr;
        uv_ip4_addr("127.0.0.1", l->listen_port, &addr);
        uv_ip4_addr("127.0.0.1", l->target_port, &l->target);
        uv_tcp_init(proxy__loop, &l->server);
        l->server.data = l;
        int rv = uv_tcp_bind(&l->server, (const struct sockaddr *)&addr, 0);
        if (rv == 0) {
            rv = uv_listen((uv_stream_t *)&l->server, 128, proxy__accepted);
        }
        if (rv != 0) {
            fprintf(stderr, "delay-proxy: listen on 127.0.0.1:%d: %s\n", l->listen_port,
                    uv_strerror(rv));
            return 1;
        }
        struct sockaddr_in bound;
        int len = sizeof bound;
        uv_tcp_getsockname(&l->server, (struct sockaddr *)&bound, &len);
        l->listen_port = ntohs(bound.sin_port);
        n_links++;
    }
    for (int i = 0; i < n_links; i++) {
        printf("listen %d -> %d\n", links[i].listen_port, links[i].target_port);
    }
    printf("ready\n");
    fflush(stdout);
    uv_signal_t sigterm, sigint;
    uv_signal_init(proxy__loop, &sigterm);
    uv_signal_init(proxy__loop, &sigint);
    uv_signal_start(&sigterm, proxy__signal, SIGTERM);
    uv_signal_start(&sigint, proxy__signal, SIGINT);
    uv_run(proxy__loop, UV_RUN_DEFAULT);
    return 0;
}
