/* Read-only, sequential reading of a log directory for offline tools
 * (log_scan_*: `tally log dump`, and `tally restore` through
 * store/import.c): every batch verified, no repair, no index needed; a
 * damaged batch is named and the rest of its segment skipped. */
#include "log/log_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "lib/batch.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "log/seg.h"

struct log_scan {
    char *dir;        /* directory (owned) */
    char **names;     /* segment file names, in offset order (owned) */
    size_t n;         /* how many */
    size_t i;         /* the one being read */
    uint64_t from;    /* skip batches that end below this offset */
    struct seg s;     /* open segment, s.fd < 0 if none */
    uint64_t pos;     /* next batch position in it */
    uint8_t *buf;     /* current batch (owned) */
    size_t cap;       /* its allocated size */
};

int log_scan_open(const char *dir, uint64_t from, struct log_scan **out, char *errmsg)
{
    struct log_scan *sc;
    char **names;
    size_t n_names, k = 0;
    int rv = fs_list(dir, &names, &n_names, errmsg);
    if (rv != 0) {
        return rv;
    }
    for (size_t i = 0; i < n_names; i++) {
        uint64_t base;
        if (log__classify(names[i], &base) == 's') {
            names[k++] = names[i];
        } else {
            free(names[i]);
        }
    }
    if (k == 0) {
        free(names);
        err_printf(errmsg, "%s: no segment files", dir);
        return TALLY_NOTFOUND;
    }
    sc = calloc(1, sizeof *sc);
    if (sc == NULL || (sc->dir = strdup(dir)) == NULL) {
        free(sc);
        fs_list_free(names, k);
        return log__nomem(errmsg, "scan log");
    }
    sc->names = names;
    sc->n = k;
    sc->from = from;
    seg_init(&sc->s, 0);
    /* Start at the last segment whose base is <= from. */
    for (size_t i = 1; i < k; i++) {
        uint64_t base;
        const char *ext;
        if (seg_parse_name(names[i], &base, &ext) && base <= from) {
            sc->i = i;
        }
    }
    *out = sc;
    return 0;
}

/* Give up on the current segment and move on. */
static void log__scan_skip(struct log_scan *sc)
{
    seg_close(&sc->s);
    sc->i++;
}

int log_scan_next(struct log_scan *sc, const uint8_t **batch, size_t *len, const char **file,
                  uint64_t *pos, char *errmsg)
{
    for (;;) {
        struct batch_header h;
        uint8_t hdr[BATCH_HEADER_SIZE];
        char why[ERR_MSG_SIZE];
        uint64_t left;
        int rv;

        if (sc->s.fd < 0) {
            uint64_t base;
            const char *ext;
            if (sc->i >= sc->n) {
                return TALLY_EOF;
            }
            seg_parse_name(sc->names[sc->i], &base, &ext);
            seg_init(&sc->s, base);
            *file = sc->s.name;
            *pos = 0;
            rv = seg_open(&sc->s, sc->dir, 0, errmsg);
            if (rv != 0) {
                sc->i++;
                return rv;
            }
            sc->pos = SEG_HEADER_SIZE;
        }
        *file = sc->s.name;
        *pos = sc->pos;
        if (sc->pos >= sc->s.size) {
            log__scan_skip(sc);
            continue;
        }
        left = sc->s.size - sc->pos;
        rv = left < BATCH_HEADER_SIZE
                 ? ERR_CORRUPT(why, "incomplete batch header (%" PRIu64 " bytes)", left)
                 : seg_read(&sc->s, sc->pos, hdr, sizeof hdr, why);
        if (rv == 0) {
            rv = batch_decode_header(hdr, sizeof hdr, &h, why);
        }
        if (rv == 0 && h.batch_len > left) {
            rv = ERR_CORRUPT(why, "incomplete batch (%" PRIu64 " of %u bytes)", left,
                             h.batch_len);
        }
        if (rv == 0 && batch_last_offset(&h) < sc->from) {
            sc->pos += h.batch_len;
            continue;
        }
        if (rv == 0 && h.batch_len > sc->cap) {
            uint8_t *nb = realloc(sc->buf, h.batch_len);
            if (nb == NULL) {
                return log__nomem(errmsg, "scan log");
            }
            sc->buf = nb;
            sc->cap = h.batch_len;
        }
        if (rv == 0) {
            rv = seg_read(&sc->s, sc->pos, sc->buf, h.batch_len, why);
        }
        if (rv == 0) {
            rv = batch_verify(sc->buf, h.batch_len, &h, why);
        }
        if (rv != 0) {
            err_printf(errmsg, "segment %s: position %" PRIu64 ": %s", sc->s.name, sc->pos,
                       log__strip(why, sc->s.name));
            /* s.name stays valid for the caller until the next call. */
            log__scan_skip(sc);
            return rv;
        }
        *batch = sc->buf;
        *len = h.batch_len;
        sc->pos += h.batch_len;
        return 0;
    }
}

void log_scan_close(struct log_scan *sc)
{
    if (sc == NULL) {
        return;
    }
    seg_close(&sc->s);
    fs_list_free(sc->names, sc->n);
    free(sc->buf);
    free(sc->dir);
    free(sc);
}
