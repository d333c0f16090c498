/* A small JSON writer for the console's answers; see ui_json.h. */
#include "server/ui_json.h"

#include <stdarg.h>
#include <stdio.h>

void ui_json_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    uint8_t *p = buf_reserve(b, (size_t)n + 1);
    if (p == NULL) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf((char *)p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf_commit(b, (size_t)n);
}

void ui_json_str(struct buf *b, const void *s, size_t n)
{
    const unsigned char *p = s;
    buf_put_u8(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            buf_put_u8(b, '\\');
            buf_put_u8(b, c);
        } else if (c < 0x20 || c >= 0x7f) {
            ui_json_printf(b, "\\u%04x", c);
        } else {
            buf_put_u8(b, c);
        }
    }
    buf_put_u8(b, '"');
}

void ui_json_base64(struct buf *b, const void *p, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *s = p;
    size_t i;
    buf_put_u8(b, '"');
    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        char q[4] = {abc[v >> 18], abc[(v >> 12) & 63], abc[(v >> 6) & 63], abc[v & 63]};
        buf_put(b, q, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)s[i] << 16;
        char q[4] = {abc[v >> 18], abc[(v >> 12) & 63], '=', '='};
        buf_put(b, q, 4);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
        char q[4] = {abc[v >> 18], abc[(v >> 12) & 63], abc[(v >> 6) & 63], '='};
        buf_put(b, q, 4);
    }
    buf_put_u8(b, '"');
}

void ui_json_error(struct buf *b, const char *msg)
{
    ui_json_printf(b, "{\"error\": ");
    ui_json_cstr(b, msg);
    ui_json_printf(b, "}\n");
}
