/* Unit tests of the blocking frame connection (src/client/wire.c): one
 * whole frame, and every way a read, a write or a connect fails, on a
 * socketpair or a real 127.0.0.1 socket. No waits longer than 100 ms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/wire.h"
#include "lib/err.h"
#include "proto/proto.h"
#include "tally.h"

/* A connected pair: t__w (the client side, non-blocking like wire_open's)
 * and t__peer (the node side, blocking). */
static struct wire t__w;
static int t__peer = -1;
static char t__msg[ERR_MSG_SIZE];

static int t__setup(void **state)
{
    int sv[2];
    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    wire_init(&t__w, "127.0.0.1:7001");
    t__w.fd = sv[0];
    t__peer = sv[1];
    t__msg[0] = '\0';
    return 0;
}

static int t__teardown(void **state)
{
    (void)state;
    wire_close(&t__w);
    if (t__peer >= 0) {
        close(t__peer);
        t__peer = -1;
    }
    return 0;
}

/* A response frame of @type with @body_len body bytes, as a node sends it. */
static void t__send_frame(uint16_t type, size_t body_len)
{
    struct buf b;
    size_t start;
    buf_init(&b);
    start = proto_begin_frame(&b, type, PROTO_FLAG_RESPONSE, 42);
    for (size_t i = 0; i < body_len; i++) {
        buf_put_u8(&b, (uint8_t)i);
    }
    proto_end_frame(&b, start);
    assert_true(buf_ok(&b));
    assert_int_equal(write(t__peer, b.data, b.len), (ssize_t)b.len);
    buf_free(&b);
}

/* A whole frame sent by the node is read with its header decoded. */
static void test_recv_frame_whole(void **state)
{
    struct buf in;
    struct proto_frame f;
    (void)state;
    buf_init(&in);
    t__send_frame(PROTO_METADATA, 300);
    assert_int_equal(wire_recv_frame(&t__w, &in, wire_now_ms() + 1000, &f, t__msg), 0);
    assert_int_equal(f.type, PROTO_METADATA);
    assert_int_equal(f.request_id, 42);
    assert_int_equal(in.len, PROTO_HEADER_SIZE + 300);
    assert_int_equal(in.data[PROTO_HEADER_SIZE + 299], 299 & 0xff);
    buf_free(&in);
}

/* Bytes that are not a tally frame header: TALLY_PROTO, named. */
static void test_recv_frame_bad_magic(void **state)
{
    uint8_t junk[PROTO_HEADER_SIZE];
    struct buf in;
    struct proto_frame f;
    (void)state;
    memset(junk, 0x5a, sizeof junk);
    assert_int_equal(write(t__peer, junk, sizeof junk), (ssize_t)sizeof junk);
    buf_init(&in);
    assert_int_equal(wire_recv_frame(&t__w, &in, wire_now_ms() + 1000, &f, t__msg), TALLY_PROTO);
    assert_non_null(strstr(t__msg, "127.0.0.1:7001: malformed response frame"));
    buf_free(&in);
}

/* The node closes in the middle of a frame: TALLY_IOERR, "closed". */
static void test_recv_frame_eof(void **state)
{
    uint8_t half[PROTO_HEADER_SIZE / 2] = {0};
    struct buf in;
    struct proto_frame f;
    (void)state;
    assert_int_equal(write(t__peer, half, sizeof half), (ssize_t)sizeof half);
    close(t__peer);
    t__peer = -1;
    buf_init(&in);
    assert_int_equal(wire_recv_frame(&t__w, &in, wire_now_ms() + 1000, &f, t__msg), TALLY_IOERR);
    assert_non_null(strstr(t__msg, "connection closed by the node"));
    buf_free(&in);
}

/* No answer before the deadline: TALLY_TIMEOUT, "did not answer in time". */
static void test_recv_timeout(void **state)
{
    uint8_t b[4];
    (void)state;
    assert_int_equal(wire_recv_exact(&t__w, b, sizeof b, wire_now_ms() + 50, t__msg),
                     TALLY_TIMEOUT);
    assert_non_null(strstr(t__msg, "127.0.0.1:7001: the node did not answer in time"));
}

/* recv_some with a past deadline is a poll: TALLY_TIMEOUT, message
 * untouched; with bytes there it appends them. */
static void test_recv_some(void **state)
{
    struct buf in;
    (void)state;
    buf_init(&in);
    snprintf(t__msg, sizeof t__msg, "earlier");
    assert_int_equal(wire_recv_some(&t__w, &in, 0, t__msg), TALLY_TIMEOUT);
    assert_string_equal(t__msg, "earlier");
    assert_int_equal(write(t__peer, "abc", 3), 3);
    assert_int_equal(wire_recv_some(&t__w, &in, wire_now_ms() + 1000, t__msg), 0);
    assert_int_equal(in.len, 3);
    close(t__peer);
    t__peer = -1;
    assert_int_equal(wire_recv_some(&t__w, &in, wire_now_ms() + 1000, t__msg), TALLY_IOERR);
    assert_non_null(strstr(t__msg, "connection closed by the node"));
    buf_free(&in);
}

/* send_all says "sent" only once every byte went; to a closed peer it
 * fails (EPIPE, no SIGPIPE) with sent still false. */
static void test_send_all(void **state)
{
    const uint8_t p[] = "request";
    uint8_t got[sizeof p];
    bool sent = false;
    (void)state;
    assert_int_equal(wire_send_all(&t__w, p, sizeof p, wire_now_ms() + 1000, &sent, t__msg), 0);
    assert_true(sent);
    assert_int_equal(read(t__peer, got, sizeof got), (ssize_t)sizeof got);
    assert_true(wire_alive(&t__w));
    close(t__peer);
    t__peer = -1;
    assert_false(wire_alive(&t__w));
    sent = false;
    assert_int_equal(wire_send_all(&t__w, p, sizeof p, wire_now_ms() + 1000, &sent, t__msg),
                     TALLY_IOERR);
    assert_false(sent);
    assert_non_null(strstr(t__msg, "127.0.0.1:7001: send: "));
}

/* A full socket and a peer that does not read: TALLY_TIMEOUT, not sent. */
static void test_send_timeout(void **state)
{
    static uint8_t big[8 << 20];
    bool sent = false;
    (void)state;
    assert_int_equal(
        wire_send_all(&t__w, big, sizeof big, wire_now_ms() + 50, &sent, t__msg), TALLY_TIMEOUT);
    assert_false(sent);
    assert_non_null(strstr(t__msg, "timed out sending the request"));
}

/* Addresses: names and dotted quads resolve and normalise; anything that
 * is not HOST:PORT with a port 1..65535 is TALLY_INVAL. */
static void test_parse_addr(void **state)
{
    struct sockaddr_in sa;
    char norm[PROTO_ADDR_MAX];
    static const char *bad[] = {"", "7001", ":7001", "127.0.0.1:", "127.0.0.1:0",
                                "127.0.0.1:65536", "127.0.0.1:70x1"};
    (void)state;
    assert_int_equal(wire_parse_addr("localhost:7001", 14, &sa, norm), 0);
    assert_string_equal(norm, "127.0.0.1:7001");
    assert_int_equal(ntohs(sa.sin_port), 7001);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(wire_parse_addr(bad[i], strlen(bad[i]), &sa, norm), TALLY_INVAL);
    }
}

/* Nothing listens: TALLY_CONNECT with the reason, and no socket left. */
static void test_open_refused(void **state)
{
    struct sockaddr_in sa;
    struct wire w;
    char norm[PROTO_ADDR_MAX];
    socklen_t len = sizeof sa;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    (void)state;
    /* A port that was just free: bound and closed without listening. */
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    close(s);
    snprintf(norm, sizeof norm, "127.0.0.1:%u", ntohs(sa.sin_port));
    wire_init(&w, norm);
    assert_int_equal(wire_open(&w, &sa, wire_now_ms() + 1000, t__msg), TALLY_CONNECT);
    assert_int_equal(w.fd, -1);
    assert_non_null(strstr(t__msg, ": connect: "));
}

/* A listener that is there: connected, and closed again. */
static void test_open_ok(void **state)
{
    struct sockaddr_in sa;
    struct wire w;
    socklen_t len = sizeof sa;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    (void)state;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s, 1), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    wire_init(&w, "listener");
    assert_int_equal(wire_open(&w, &sa, wire_now_ms() + 1000, t__msg), 0);
    assert_true(w.fd >= 0);
    wire_close(&w);
    assert_int_equal(w.fd, -1);
    close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_recv_frame_whole, t__setup, t__teardown),
        cmocka_unit_test_setup_teardown(test_recv_frame_bad_magic, t__setup, t__teardown),
        cmocka_unit_test_setup_teardown(test_recv_frame_eof, t__setup, t__teardown),
        cmocka_unit_test_setup_teardown(test_recv_timeout, t__setup, t__teardown),
        cmocka_unit_test_setup_teardown(test_recv_some, t__setup, t__teardown),
        cmocka_unit_test_setup_teardown(test_send_all, t__setup, t__teardown),
        cmocka_unit_test_setup_teardown(test_send_timeout, t__setup, t__teardown),
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_open_refused),
        cmocka_unit_test(test_open_ok),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
