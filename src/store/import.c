/* Backups: manifest codec, verification, and the offline restore into a new
 * node's data directory (format and rules at the top of import.h). */
#include "store/import.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "lib/batch.h"
#include "lib/codec.h"
#include "lib/err.h"
#include "lib/fs.h"
#include "lib/logger.h"

#define IMPORT__MAX_LINE 2048

void import_manifest_init(struct import_manifest *m)
{
    memset(m, 0, sizeof *m);
    m->version = IMPORT_MANIFEST_VERSION;
}

void import_manifest_free(struct import_manifest *m)
{
    free(m->topics);
    free(m->groups);
    free(m->files);
    import_manifest_init(m);
}

/* Grow an array of @size-byte items to hold one more. */
static int import__grow(void **items, unsigned n, unsigned *cap, size_t size)
{
    if (n < *cap) {
        return 0;
    }
    unsigned ncap = *cap ? *cap * 2 : 16;
    void *p = realloc(*items, (size_t)ncap * size);
    if (p == NULL) {
        return TALLY_NOMEM;
    }
    *items = p;
    *cap = ncap;
    return 0;
}

int import_manifest_add_topic(struct import_manifest *m, const struct import_topic *t)
{
    if (import__grow((void **)&m->topics, m->n_topics, &m->cap_topics, sizeof *t) != 0) {
        return TALLY_NOMEM;
    }
    m->topics[m->n_topics++] = *t;
    return 0;
}

int import_manifest_add_group(struct import_manifest *m, const struct import_group *g)
{
    if (import__grow((void **)&m->groups, m->n_groups, &m->cap_groups, sizeof *g) != 0) {
        return TALLY_NOMEM;
    }
    m->groups[m->n_groups++] = *g;
    return 0;
}

/* Size and XXH3-64 of a whole file (mapped, so any size works). */
static int import__file_sum(const char *path, uint64_t *size, uint64_t *sum, char *errmsg)
{
    int fd, rv = fs_open(path, O_RDONLY, path, &fd, errmsg);
    if (rv != 0) {
        return rv;
    }
    if ((rv = fs_size(fd, size, path, errmsg)) != 0) {
        fs_close(fd);
        return rv;
    }
    if (*size == 0) {
        *sum = codec_checksum("", 0);
        fs_close(fd);
        return 0;
    }
    void *p = mmap(NULL, (size_t)*size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
        rv = err_os(errmsg, errno, "map %s", path);
        fs_close(fd);
        return rv;
    }
    *sum = codec_checksum(p, (size_t)*size);
    munmap(p, (size_t)*size);
    fs_close(fd);
    return 0;
}

int import_manifest_add_files(struct import_manifest *m, const char *dir, char *errmsg)
{
    for (unsigned i = 0; i < m->n_topics; i++) {
        char tdir[PATH_MAX + STORE_NAME_MAX + 16], path[PATH_MAX + IMPORT_PATH_MAX];
        char **names;
        size_t n;
        int rv;
        snprintf(tdir, sizeof tdir, "%s/topics/%s", dir, m->topics[i].name);
        /* Sorted, so the manifest lists a topic's files in offset order. */
        if ((rv = fs_list(tdir, &names, &n, errmsg)) != 0) {
            return rv;
        }
        for (size_t k = 0; k < n && rv == 0; k++) {
            struct import_file f;
            memset(&f, 0, sizeof f);
            snprintf(f.path, sizeof f.path, "topics/%s/%s", m->topics[i].name, names[k]);
            snprintf(path, sizeof path, "%s/%s", dir, f.path);
            rv = import__file_sum(path, &f.size, &f.checksum, errmsg);
            if (rv == 0 && import__grow((void **)&m->files, m->n_files, &m->cap_files,
                                        sizeof f) != 0) {
                rv = TALLY_NOMEM;
            }
            if (rv == 0) {
                m->files[m->n_files++] = f;
            }
        }
        fs_list_free(names, n);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

static bool import__plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

static void import__put_escaped(struct buf *b, const char *s)
{
    char hex[4];
    if (*s == '\0') {
        buf_put(b, "%", 1); /* never written: group names are not empty */
        return;
    }
    for (; *s != '\0'; s++) {
        if (import__plain((unsigned char)*s)) {
            buf_put(b, s, 1);
        } else {
            snprintf(hex, sizeof hex, "%%%02X", (unsigned char)*s);
            buf_put(b, hex, 3);
        }
    }
}

/* Decode a percent-encoded word into @out (capacity @cap). */
static bool import__unescape(const char *s, char *out, size_t cap)
{
    size_t k = 0;
    while (*s != '\0') {
        unsigned v;
        if (k + 1 >= cap) {
            return false;
        }
        if (*s == '%') {
            if (sscanf(s + 1, "%2x", &v) != 1 || v == 0 || s[1] == '\0' || s[2] == '\0') {
                return false;
            }
            out[k++] = (char)v;
            s += 3;
        } else if (import__plain((unsigned char)*s)) {
            out[k++] = *s++;
        } else {
            return false;
        }
    }
    out[k] = '\0';
    return k > 0;
}

static void import__printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void import__printf(struct buf *b, const char *fmt, ...)
{
    char line[IMPORT__MAX_LINE];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0) {
        buf_put(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    }
}

int import_manifest_write(const struct import_manifest *m, const char *dir, char *errmsg)
{
    char path[PATH_MAX + 32], tmp[PATH_MAX + 40];
    struct buf b;
    int rv;
    buf_init(&b);
    import__printf(&b, "tally-backup %u\n", (unsigned)IMPORT_MANIFEST_VERSION);
    import__printf(&b, "created_ms %" PRId64 "\n", m->created_ms);
    import__printf(&b, "node %" PRIu64 "\n", m->node_id);
    import__printf(&b, "applied_index %" PRIu64 "\n", m->applied_index);
    import__printf(&b, "term %" PRIu64 "\n", m->term);
    for (unsigned i = 0; i < m->n_topics; i++) {
        const struct import_topic *t = &m->topics[i];
        import__printf(&b, "topic %s %u %" PRId64 " %" PRId64 " %" PRId64 " %" PRIu64 " %" PRIu64 "\n",
                       t->name, (unsigned)t->config.policy, t->config.retention_ms,
                       t->config.retention_bytes, t->config.segment_bytes, t->start_offset,
                       t->next_offset);
    }
    for (unsigned i = 0; i < m->n_groups; i++) {
        buf_put(&b, "group ", 6);
        import__put_escaped(&b, m->groups[i].group);
        import__printf(&b, " %s %" PRIu64 "\n", m->groups[i].topic, m->groups[i].offset);
    }
    for (unsigned i = 0; i < m->n_files; i++) {
        import__printf(&b, "file %s %" PRIu64 " %016" PRIx64 "\n", m->files[i].path,
                       m->files[i].size, m->files[i].checksum);
    }
    import__printf(&b, "end\n");
    if (buf_ok(&b)) {
        import__printf(&b, "checksum %016" PRIx64 "\n", codec_checksum(b.data, b.len));
    }
    if (!buf_ok(&b)) {
        buf_free(&b);
        return TALLY_NOMEM;
    }
    snprintf(path, sizeof path, "%s/" IMPORT_MANIFEST_NAME, dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    rv = fs_write_synced(tmp, b.data, b.len, errmsg);
    buf_free(&b);
    if (rv == 0) {
        rv = fs_rename(tmp, path, errmsg);
    }
    if (rv == 0) {
        rv = fs_sync_dir(dir, errmsg);
    }
    if (rv != 0) {
        char why[ERR_MSG_SIZE];
        (void)fs_unlink(tmp, why); /* (the error above is the one to report) */
    }
    return rv;
}

/* Parse one manifest line (NUL-terminated, no newline) into @m. */
static int import__parse_line(struct import_manifest *m, char *line, unsigned lineno,
                              int *section, char *errmsg)
{
    char word[IMPORT__MAX_LINE], a[IMPORT__MAX_LINE], b[IMPORT__MAX_LINE];
    int n = 0;
    if (sscanf(line, "%63s%n", word, &n) != 1) {
        return ERR_CORRUPT(errmsg, "MANIFEST line %u: empty", lineno);
    }
    if (lineno == 1) {
        unsigned v;
        char extra;
        if (strcmp(word, "tally-backup") != 0 || sscanf(line + n, "%u %c", &v, &extra) != 1) {
            return ERR_CORRUPT(errmsg, "MANIFEST: not a tally backup manifest");
        }
        if (v != IMPORT_MANIFEST_VERSION) {
            err_printf(errmsg, "MANIFEST: backup format version %u, this build reads %u", v,
                       (unsigned)IMPORT_MANIFEST_VERSION);
            return TALLY_VERSION;
        }
        m->version = v;
        return 0;
    }
    if (strcmp(word, "created_ms") == 0 && sscanf(line + n, "%" SCNd64, &m->created_ms) == 1) {
        return 0;
    }
    if (strcmp(word, "node") == 0 && sscanf(line + n, "%" SCNu64, &m->node_id) == 1) {
        return 0;
    }
    if (strcmp(word, "applied_index") == 0 &&
        sscanf(line + n, "%" SCNu64, &m->applied_index) == 1) {
        return 0;
    }
    if (strcmp(word, "term") == 0 && sscanf(line + n, "%" SCNu64, &m->term) == 1) {
        return 0;
    }
    if (strcmp(word, "topic") == 0 && *section <= 1) {
        struct import_topic t;
        unsigned policy;
        memset(&t, 0, sizeof t);
        *section = 1;
        if (sscanf(line + n, "%1023s %u %" SCNd64 " %" SCNd64 " %" SCNd64 " %" SCNu64 " %" SCNu64,
                   a, &policy, &t.config.retention_ms, &t.config.retention_bytes,
                   &t.config.segment_bytes, &t.start_offset, &t.next_offset) == 7 &&
            strlen(a) < sizeof t.name && store_topic_name_valid(a) && policy <= 3 &&
            t.start_offset <= t.next_offset) {
            snprintf(t.name, sizeof t.name, "%s", a);
            t.config.policy = (uint8_t)policy;
            return import_manifest_add_topic(m, &t);
        }
    } else if (strcmp(word, "group") == 0 && *section <= 2) {
        struct import_group g;
        memset(&g, 0, sizeof g);
        *section = 2;
        if (sscanf(line + n, "%1023s %1023s %" SCNu64, a, b, &g.offset) == 3 &&
            import__unescape(a, g.group, sizeof g.group) && strlen(b) < sizeof g.topic &&
            store_topic_name_valid(b)) {
            snprintf(g.topic, sizeof g.topic, "%s", b);
            return import_manifest_add_group(m, &g);
        }
    } else if (strcmp(word, "file") == 0 && *section <= 3) {
        struct import_file f;
        memset(&f, 0, sizeof f);
        *section = 3;
        if (sscanf(line + n, "%1023s %" SCNu64 " %" SCNx64, a, &f.size, &f.checksum) == 3 &&
            strlen(a) < sizeof f.path && strncmp(a, "topics/", 7) == 0 &&
            strstr(a, "..") == NULL) {
            snprintf(f.path, sizeof f.path, "%s", a);
            if (import__grow((void **)&m->files, m->n_files, &m->cap_files, sizeof f) != 0) {
                return TALLY_NOMEM;
            }
            m->files[m->n_files++] = f;
            return 0;
        }
    } else if (strcmp(word, "end") == 0) {
        *section = 4;
        return 0;
    }
    return ERR_CORRUPT(errmsg, "MANIFEST line %u malformed: %.80s", lineno, line);
}

int import_manifest_read(const char *dir, struct import_manifest *m, char *errmsg)
{
    char path[PATH_MAX + 32];
    void *file = NULL;
    size_t len = 0;
    int rv;
    import_manifest_init(m);
    snprintf(path, sizeof path, "%s/" IMPORT_MANIFEST_NAME, dir);
    rv = fs_read_file(path, 64 << 20, &file, &len, errmsg);
    if (rv == TALLY_NOTFOUND) {
        err_printf(errmsg, "%s has no MANIFEST: not a backup, or an unfinished one", dir);
        return TALLY_NOTFOUND;
    }
    if (rv != 0) {
        return rv;
    }
    char *data = file; /* NUL-terminated by fs_read_file */
    /* The last line is "checksum HEX" over everything before it. */
    char *last = NULL;
    for (size_t i = len > 1 ? len - 1 : 0; i > 0 && last == NULL; i--) {
        last = data[i - 1] == '\n' ? &data[i - 1] : NULL;
    }
    size_t body = last != NULL ? (size_t)(last - data) + 1 : 0;
    uint64_t want = 0;
    char tail;
    if (last == NULL || data[len - 1] != '\n' ||
        sscanf(data + body, "checksum %" SCNx64 "%c", &want, &tail) != 2 || tail != '\n') {
        free(data);
        return ERR_CORRUPT(errmsg, "%s: no checksum line at the end (cut short?)", path);
    }
    if (codec_checksum(data, body) != want) {
        free(data);
        return ERR_CORRUPT(errmsg, "%s: checksum mismatch: the manifest was changed or damaged",
                           path);
    }
    if (memchr(data, '\0', len) != NULL) {
        free(data);
        return ERR_CORRUPT(errmsg, "%s holds a NUL byte", path);
    }
    int section = 0;
    unsigned lineno = 0;
    char *p = data;
    while (rv == 0 && p < data + body) {
        char *nl = memchr(p, '\n', (size_t)(data + body - p));
        *nl = '\0';
        if (nl - p >= IMPORT__MAX_LINE) {
            rv = ERR_CORRUPT(errmsg, "MANIFEST line %u is too long", lineno + 1);
            break;
        }
        if (section == 4) {
            rv = ERR_CORRUPT(errmsg, "MANIFEST: text after 'end'");
            break;
        }
        rv = import__parse_line(m, p, ++lineno, &section, errmsg);
        p = nl + 1;
    }
    free(data);
    if (rv == 0 && section != 4) {
        rv = ERR_CORRUPT(errmsg, "MANIFEST: no 'end' line");
    }
    if (rv == 0 && m->version != IMPORT_MANIFEST_VERSION) {
        rv = ERR_CORRUPT(errmsg, "MANIFEST: no version line");
    }
    for (unsigned i = 0; rv == 0 && i < m->n_groups; i++) {
        bool known = false;
        for (unsigned k = 0; k < m->n_topics && !known; k++) {
            known = strcmp(m->topics[k].name, m->groups[i].topic) == 0;
        }
        if (!known) {
            rv = ERR_CORRUPT(errmsg, "MANIFEST: group %s is on topic %s, which it does not list",
                             m->groups[i].group, m->groups[i].topic);
        }
    }
    if (rv != 0) {
        err_wrap(errmsg, "backup %s", dir);
        import_manifest_free(m);
    }
    return rv;
}

/* Is @name a topic of @m; and is "topics/NAME/FILE" listed. */
static const struct import_file *import__find_file(const struct import_manifest *m,
                                                   const char *rel)
{
    for (unsigned i = 0; i < m->n_files; i++) {
        if (strcmp(m->files[i].path, rel) == 0) {
            return &m->files[i];
        }
    }
    return NULL;
}

/* The log of topic @it in the backup must hold exactly its manifest range:
 * batches (checksums verified) with contiguous offsets, the first holding
 * START, the last ending at NEXT - 1, and none from after the cut (a Raft
 * index above its applied index). A backup whose copy does not match
 * what the manifest claims is refused here, by --verify as by restore,
 * rather than restored with records missing. */
static int import__check_range(const struct import_manifest *m, const char *dir,
                               const struct import_topic *it, char *errmsg)
{
    char tdir[PATH_MAX + STORE_NAME_MAX + 16];
    struct log_scan *sc = NULL;
    uint64_t expect = UINT64_MAX;
    int rv;
    if (it->next_offset == it->start_offset) {
        return 0;
    }
    snprintf(tdir, sizeof tdir, "%s/topics/%s", dir, it->name);
    rv = log_scan_open(tdir, it->start_offset, &sc, errmsg);
    if (rv == TALLY_NOTFOUND) {
        return ERR_CORRUPT(errmsg, "backup topic %s has no records, the manifest says "
                                   "%" PRIu64 "..%" PRIu64,
                           it->name, it->start_offset, it->next_offset - 1);
    }
    if (rv != 0) {
        err_wrap(errmsg, "backup topic %s", it->name);
        return rv;
    }
    for (;;) {
        const uint8_t *batch;
        size_t len;
        const char *file;
        uint64_t pos;
        struct batch_header h;
        rv = log_scan_next(sc, &batch, &len, &file, &pos, errmsg);
        if (rv == TALLY_EOF) {
            rv = 0;
            if (expect != it->next_offset) {
                rv = ERR_CORRUPT(errmsg, "backup topic %s ends at offset %" PRIu64
                                         ", the manifest says %" PRIu64,
                                 it->name, expect == UINT64_MAX ? it->start_offset : expect,
                                 it->next_offset);
            }
            break;
        }
        if (rv == 0) {
            rv = batch_verify(batch, len, &h, errmsg);
        }
        if (rv != 0) {
            err_wrap(errmsg, "backup file %s/%s at position %" PRIu64, tdir, file, pos);
            break;
        }
        if ((expect == UINT64_MAX && h.base_offset > it->start_offset) ||
            (expect != UINT64_MAX && h.base_offset != expect) ||
            batch_last_offset(&h) >= it->next_offset) {
            rv = ERR_CORRUPT(errmsg, "backup file %s/%s at position %" PRIu64 ": batch of "
                                     "offsets %" PRIu64 "..%" PRIu64 " does not fit the "
                                     "manifest's %" PRIu64 "..%" PRIu64,
                             tdir, file, pos, h.base_offset, batch_last_offset(&h),
                             it->start_offset, it->next_offset - 1);
            break;
        }
        if (h.raft_index > m->applied_index) {
            rv = ERR_CORRUPT(errmsg, "backup file %s/%s at position %" PRIu64 ": batch at "
                                     "offset %" PRIu64 " comes from Raft index %" PRIu64
                                     ", after the cut at %" PRIu64,
                             tdir, file, pos, h.base_offset, h.raft_index, m->applied_index);
            break;
        }
        expect = batch_last_offset(&h) + 1;
    }
    log_scan_close(sc);
    return rv;
}

int import_verify(const struct import_manifest *m, const char *dir, import_progress_fn progress,
                  void *arg, char *errmsg)
{
    uint64_t total = 0, done = 0;
    for (unsigned i = 0; i < m->n_files; i++) {
        total += m->files[i].size;
    }
    for (unsigned i = 0; i < m->n_files; i++) {
        const struct import_file *f = &m->files[i];
        char path[PATH_MAX + IMPORT_PATH_MAX];
        uint64_t size, sum;
        snprintf(path, sizeof path, "%s/%s", dir, f->path);
        int rv = import__file_sum(path, &size, &sum, errmsg);
        if (rv != 0) {
            err_wrap(errmsg, "backup file %s", path);
            return rv;
        }
        if (size != f->size) {
            return ERR_CORRUPT(errmsg, "backup file %s: %" PRIu64 " bytes, the manifest says %" PRIu64,
                               path, size, f->size);
        }
        if (sum != f->checksum) {
            return ERR_CORRUPT(errmsg, "backup file %s: checksum %016" PRIx64
                                       " does not match the manifest's %016" PRIx64,
                               path, sum, f->checksum);
        }
        done += size;
        if (progress != NULL) {
            progress(arg, "verify", done, total);
        }
    }
    /* Nothing unlisted in the topic directories (a stray segment would be
     * read by the log layer as part of the topic). */
    for (unsigned i = 0; i < m->n_topics; i++) {
        char tdir[PATH_MAX + STORE_NAME_MAX + 16];
        char **names;
        size_t n;
        snprintf(tdir, sizeof tdir, "%s/topics/%s", dir, m->topics[i].name);
        int rv = fs_list(tdir, &names, &n, errmsg);
        if (rv != 0) {
            err_wrap(errmsg, "backup topic %s", m->topics[i].name);
            return rv;
        }
        for (size_t k = 0; k < n && rv == 0; k++) {
            char rel[IMPORT_PATH_MAX + 300];
            snprintf(rel, sizeof rel, "topics/%s/%s", m->topics[i].name, names[k]);
            if (import__find_file(m, rel) == NULL) {
                rv = ERR_CORRUPT(errmsg, "backup file %s/%s is not in the manifest", dir, rel);
            }
        }
        fs_list_free(names, n);
        if (rv != 0) {
            return rv;
        }
    }
    /* Each topic's records match its manifest range. */
    for (unsigned i = 0; i < m->n_topics; i++) {
        int rv = import__check_range(m, dir, &m->topics[i], errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

/* Copy the batches of one topic from the backup into the store's topic,
 * re-stamped with raft_index 0, counting keys into its key index. */
static int import__topic(const char *backup_dir, const struct import_topic *it,
                         struct store_topic *t, import_progress_fn progress, void *arg,
                         uint64_t *done, uint64_t total, struct import_stats *st, char *errmsg)
{
    char tdir[PATH_MAX + STORE_NAME_MAX + 16];
    struct log_scan *sc = NULL;
    struct buf copy;
    int rv;
    if (it->next_offset == it->start_offset) {
        return 0;
    }
    snprintf(tdir, sizeof tdir, "%s/topics/%s", backup_dir, it->name);
    rv = log_scan_open(tdir, it->start_offset, &sc, errmsg);
    if (rv != 0) {
        err_wrap(errmsg, "backup topic %s", it->name);
        return rv;
    }
    buf_init(&copy);
    while (rv == 0 && log_next_offset(t->log) < it->next_offset) {
        const uint8_t *batch;
        size_t len;
        const char *file;
        uint64_t pos;
        struct batch_header h;
        rv = log_scan_next(sc, &batch, &len, &file, &pos, errmsg);
        if (rv == TALLY_EOF) {
            rv = ERR_CORRUPT(errmsg, "backup topic %s ends at offset %" PRIu64
                                     ", the manifest says %" PRIu64,
                             it->name, log_next_offset(t->log), it->next_offset);
            break;
        }
        if (rv != 0) {
            err_wrap(errmsg, "backup file %s/%s", tdir, file); /* errmsg has the position */
            break;
        }
        if ((rv = batch_verify(batch, len, &h, errmsg)) != 0) {
            err_wrap(errmsg, "backup file %s/%s at position %" PRIu64, tdir, file, pos);
            break;
        }
        if (h.base_offset != log_next_offset(t->log) || batch_last_offset(&h) >= it->next_offset) {
            rv = ERR_CORRUPT(errmsg, "backup file %s/%s at position %" PRIu64
                                     ": batch at offset %" PRIu64 " where %" PRIu64
                                     " was expected (below %" PRIu64 ")",
                             tdir, file, pos, h.base_offset, log_next_offset(t->log),
                             it->next_offset);
            break;
        }
        copy.len = 0;
        buf_put(&copy, batch, len);
        if (!buf_ok(&copy)) {
            rv = TALLY_NOMEM;
            break;
        }
        /* The new cluster's Raft log starts at 1: index 0 keeps its first
         * appends from being taken for replays (import.h). */
        batch_stamp(copy.data, h.base_offset, h.first_timestamp, 0);
        rv = log_append(t->log, copy.data, len, h.first_timestamp, errmsg);
        if (rv == 0 && (h.flags & BATCH_FLAG_KEYED)) {
            struct batch_iter bi;
            struct batch_record r;
            rv = batch_iter_init(&bi, copy.data, len, errmsg);
            while (rv == 0 && (rv = batch_iter_next(&bi, &r, errmsg)) == 0) {
                if (r.key != NULL) {
                    rv = keys_bump(&t->keys, r.key, r.key_len, r.offset);
                }
            }
            batch_iter_close(&bi);
            rv = rv == TALLY_EOF ? 0 : rv;
        }
        if (rv != 0) {
            err_wrap(errmsg, "restore topic %s at offset %" PRIu64, it->name, h.base_offset);
            break;
        }
        st->batches++;
        st->records += h.record_count;
        st->bytes += len;
        *done += len;
        if (progress != NULL) {
            progress(arg, "restore", *done, total);
        }
    }
    buf_free(&copy);
    log_scan_close(sc);
    return rv;
}

/* Create the directories above @path that are missing (mkdir -p of its
 * parent), as tallyd does for --data. */
static int import__mkdir_parents(const char *path, char *errmsg)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p != '/') {
            continue;
        }
        *p = '\0';
        int rv = fs_mkdir(tmp, NULL, errmsg);
        if (rv != 0) {
            return rv;
        }
        *p = '/';
    }
    return 0;
}

/* 0 if @path does not exist or is an empty directory (*exists tells). */
static int import__check_target(const char *path, bool *exists, char *errmsg)
{
    struct stat st;
    char **names;
    size_t n;
    int rv;
    *exists = false;
    if (stat(path, &st) != 0 && errno == ENOENT) {
        return 0;
    }
    if ((rv = fs_list(path, &names, &n, errmsg)) != 0) {
        return rv;
    }
    *exists = true;
    fs_list_free(names, n);
    if (n > 0) {
        err_printf(errmsg, "%s is not empty: restore only into a new node's empty data "
                           "directory", path);
        return TALLY_EXISTS;
    }
    return 0;
}

int import_restore(const char *backup_dir, const char *data_dir,
                   const struct log_config *defaults, import_progress_fn progress, void *arg,
                   struct import_stats *st, char *errmsg)
{
    struct import_manifest m;
    struct store *s = NULL;
    char target[PATH_MAX], staging[PATH_MAX + 16], parent[PATH_MAX];
    struct stat sb;
    bool exists;
    uint64_t done = 0, total = 0;
    int rv;
    memset(st, 0, sizeof *st);
    if (strlen(data_dir) >= PATH_MAX - 16) {
        err_printf(errmsg, "data directory path too long");
        return TALLY_INVAL;
    }
    /* "DIR/" must stage in "DIR.restoring", not inside DIR. */
    snprintf(target, sizeof target, "%s", data_dir);
    for (size_t n = strlen(target); n > 1 && target[n - 1] == '/'; n--) {
        target[n - 1] = '\0';
    }
    data_dir = target;
    if ((rv = import__check_target(data_dir, &exists, errmsg)) != 0) {
        return rv;
    }
    snprintf(staging, sizeof staging, "%s.restoring", data_dir);
    if (lstat(staging, &sb) == 0) {
        err_printf(errmsg, "%s exists (left by a failed restore?): remove it first", staging);
        return TALLY_EXISTS;
    }
    if ((rv = import_manifest_read(backup_dir, &m, errmsg)) != 0) {
        return rv;
    }
    if ((rv = import_verify(&m, backup_dir, progress, arg, errmsg)) != 0) {
        import_manifest_free(&m);
        return rv;
    }
    for (unsigned i = 0; i < m.n_files; i++) {
        total += m.files[i].size;
    }
    if ((rv = import__mkdir_parents(staging, errmsg)) != 0 ||
        (rv = store_open(staging, defaults, &s, errmsg)) != 0) {
        err_wrap(errmsg, "create %s", staging);
        import_manifest_free(&m);
        return rv;
    }
    for (unsigned i = 0; rv == 0 && i < m.n_topics; i++) {
        struct store_topic *t = NULL;
        rv = store_import_topic(s, m.topics[i].name, &m.topics[i].config, m.topics[i].start_offset,
                                &t, errmsg);
        if (rv == 0) {
            rv = import__topic(backup_dir, &m.topics[i], t, progress, arg, &done, total, st,
                               errmsg);
        }
        st->topics += rv == 0;
    }
    for (unsigned i = 0; rv == 0 && i < m.n_groups; i++) {
        rv = store_import_group(s, m.groups[i].group, m.groups[i].topic, m.groups[i].offset,
                                errmsg);
        if (rv == TALLY_OUT_OF_RANGE) {
            /* A backup made before positions were tied to their topic may
             * hold one of a deleted topic, past the end of today's: it
             * would skip records, so it is left out. */
            TLOG_WARN("import", "%s: position left out", errmsg);
            rv = 0;
            continue;
        }
        st->groups += rv == 0;
    }
    /* Logs, key index checkpoints, then the catalog, all at index 0. */
    if (rv == 0) {
        rv = store_checkpoint(s, errmsg);
    }
    store_close(s);
    import_manifest_free(&m);
    if (rv == 0 && exists) {
        rv = fs_rmdir(data_dir, errmsg);
    }
    if (rv == 0) {
        rv = fs_rename(staging, data_dir, errmsg);
    }
    if (rv == 0) {
        snprintf(parent, sizeof parent, "%s", data_dir);
        char *slash = strrchr(parent, '/');
        if (slash == NULL) {
            snprintf(parent, sizeof parent, ".");
        } else if (slash == parent) {
            parent[1] = '\0';
        } else {
            *slash = '\0';
        }
        rv = fs_sync_dir(parent, errmsg);
    }
    if (rv != 0) {
        /* Nothing half-built is left where a node could start from it. */
        struct stat sb2;
        char why[ERR_MSG_SIZE];
        if (lstat(staging, &sb2) == 0) {
            (void)fs_remove_tree(staging, why); /* (the error above is the one to report) */
        }
    }
    return rv;
}
