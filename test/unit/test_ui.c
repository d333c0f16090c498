/* Unit tests of the console's query strings (src/server/ui_query.c) and its
 * JSON writer (src/server/ui_json.c): every rule that turns a request into
 * 400, and the escapes and base64 the page decodes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "server/ui_json.h"
#include "server/ui_query.h"

/* Parse @q against the parameters "topic", "from" and "key". */
static int parse(const char *q, struct ui_query_param p[3], char *why)
{
    memset(p, 0, 3 * sizeof p[0]);
    p[0].name = "topic";
    p[1].name = "from";
    p[2].name = "key";
    why[0] = '\0';
    return ui_query_parse(q, p, 3, why, 256);
}

static void test_ui_query_good(void **state)
{
    struct ui_query_param p[3];
    char why[256];
    (void)state;
    assert_int_equal(parse("", p, why), 0);
    assert_false(p[0].set || p[1].set || p[2].set);
    assert_int_equal(parse("topic=orders&from=12", p, why), 0);
    assert_true(p[0].set && p[1].set && !p[2].set);
    assert_string_equal(p[0].value, "orders");
    assert_int_equal(p[0].len, 6);
    assert_string_equal(p[1].value, "12");
    /* percent-encoding, '+' as a space, bytes beyond ASCII, empty value */
    assert_int_equal(parse("key=a%2Fb+c%C3%A9%26&topic=", p, why), 0);
    assert_string_equal(p[2].value, "a/b c\xc3\xa9&");
    assert_int_equal(p[2].len, 8);
    assert_true(p[0].set);
    assert_int_equal(p[0].len, 0);
    assert_int_equal(parse("k%65y=x", p, why), 0); /* an encoded name */
    assert_string_equal(p[2].value, "x");
}

static void test_ui_query_bad(void **state)
{
    static const struct {
        const char *q, *why;
    } bad[] = {
        {"what=1", "unknown parameter 'what'"},
        {"topic=a&topic=b", "parameter 'topic' given twice"},
        {"topic", "not NAME=VALUE"},
        {"=x", "not NAME=VALUE"},
        {"topic=a&", "ends with '&'"},
        {"&topic=a", "empty parameter"},
        {"topic=a&&from=1", "empty parameter"},
        {"key=%zz", "malformed percent-encoding"},
        {"key=%4", "malformed percent-encoding"},
        {"key=%", "malformed percent-encoding"},
        {"key=%00", "malformed percent-encoding"},
        {"key=a%0", "malformed percent-encoding"},
    };
    struct ui_query_param p[3];
    char why[256];
    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(bad[i].q, p, why), 400);
        if (strstr(why, bad[i].why) == NULL) {
            fail_msg("%s: '%s' lacks '%s'", bad[i].q, why, bad[i].why);
        }
    }
    /* Longest accepted and shortest refused query. */
    char q[UI_MAX_QUERY + 2];
    memcpy(q, "key=", 4);
    memset(q + 4, 'a', UI_MAX_QUERY - 4);
    q[UI_MAX_QUERY] = '\0';
    assert_int_equal(parse(q, p, why), 0);
    assert_int_equal(p[2].len, UI_MAX_QUERY - 4);
    q[UI_MAX_QUERY] = 'a';
    q[UI_MAX_QUERY + 1] = '\0';
    assert_int_equal(parse(q, p, why), 400);
    assert_non_null(strstr(why, "too long"));
}

static void test_ui_query_number(void **state)
{
    struct ui_query_param p = {.name = "n"};
    uint64_t v = 7;
    (void)state;
    static const char *const good[] = {"0", "42", "9223372036854775807", "0000000000000000001"};
    static const uint64_t want[] = {0, 42, 9223372036854775807ull, 1};
    for (size_t i = 0; i < 4; i++) {
        p.len = strlen(good[i]);
        memcpy(p.value, good[i], p.len + 1);
        assert_true(ui_query_number(&p, &v));
        assert_int_equal(v, want[i]);
    }
    static const char *const bad[] = {"", "-1", "+1", " 1", "1 ", "1e3", "0x10",
                                      "12345678901234567890"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p.len = strlen(bad[i]);
        memcpy(p.value, bad[i], p.len + 1);
        if (ui_query_number(&p, &v)) {
            fail_msg("'%s' taken as a number", bad[i]);
        }
    }
}

static void test_ui_json(void **state)
{
    struct buf b;
    (void)state;
    /* RFC 4648 section 10 test vectors. */
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"\"\"", "\"Zg==\"", "\"Zm8=\"", "\"Zm9v\"", "\"Zm9vYg==\"",
                                      "\"Zm9vYmE=\"", "\"Zm9vYmFy\""};
    for (size_t i = 0; i < 7; i++) {
        buf_init(&b);
        ui_json_base64(&b, in[i], strlen(in[i]));
        buf_put_u8(&b, 0);
        assert_string_equal((char *)b.data, out[i]);
        buf_free(&b);
    }
    buf_init(&b);
    ui_json_str(&b, "a\"b\\c\n\x01\xff", 8);
    buf_put_u8(&b, 0);
    assert_string_equal((char *)b.data, "\"a\\\"b\\\\c\\u000a\\u0001\\u00ff\"");
    buf_free(&b);
    buf_init(&b);
    ui_json_error(&b, "no topic \"x\"");
    buf_put_u8(&b, 0);
    assert_string_equal((char *)b.data, "{\"error\": \"no topic \\\"x\\\"\"}\n");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ui_query_good),
        cmocka_unit_test(test_ui_query_bad),
        cmocka_unit_test(test_ui_query_number),
        cmocka_unit_test(test_ui_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
