/* A small JSON writer for the console's answers (ui.c, ui_records.c):
 * appends to a struct buf; the caller writes the punctuation. */
#ifndef TALLY_SERVER_UI_JSON_H_
#define TALLY_SERVER_UI_JSON_H_

#include <stddef.h>
#include <stdint.h>

#include "lib/byte.h"

/* printf into @b. */
void ui_json_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* @s (@n bytes) as a JSON string: quote, backslash and control characters
 * escaped, and bytes that are not ASCII written as \u00XX (read as
 * Latin-1), so any bytes give valid JSON. */
void ui_json_str(struct buf *b, const void *s, size_t n);
static inline void ui_json_cstr(struct buf *b, const char *s)
{
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    ui_json_str(b, s, n);
}

/* @p (@n bytes) as a JSON string in standard base64 (RFC 4648, padded). */
void ui_json_base64(struct buf *b, const void *p, size_t n);

/* {"error": @msg} */
void ui_json_error(struct buf *b, const char *msg);

#endif
