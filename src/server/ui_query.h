/* Query strings of the console's requests (ui.c): NAME=VALUE pairs joined
 * by '&', percent-encoded, checked whole before a request reads anything
 * (docs/console.md, Bad input). */
#ifndef TALLY_SERVER_UI_QUERY_H_
#define TALLY_SERVER_UI_QUERY_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UI_MAX_QUERY 1024 /* longer query strings answer 400 */

struct ui_query_param {
    const char *name;             /* set by the caller: a parameter it takes */
    bool set;                     /* it was given */
    char value[UI_MAX_QUERY + 1]; /* percent-decoded, NUL-terminated; no NUL inside */
    size_t len;
};

/* Parse @query (the raw text after '?', "" for none) into @params, whose
 * names the caller set (@n of them; the other fields zero). Returns 0, or
 * 400 with the reason in @why (@cap bytes): longer than UI_MAX_QUERY, an
 * empty pair or a trailing '&', a pair without '=', an empty name, a name
 * not in @params, a name given twice, a bad %XX escape or %00. '+' is a
 * space. */
int ui_query_parse(const char *query, struct ui_query_param *params, unsigned n, char *why, size_t cap);

/* @p's value as a decimal number of 1 to 19 digits (so it fits an int64);
 * false otherwise (sign, space, empty, too long). */
bool ui_query_number(const struct ui_query_param *p, uint64_t *out);

#endif
