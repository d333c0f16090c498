/* The data directory's identity file (format in ident.h). */
#include "repl/ident.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/fs.h"

#define IDENT__FILE "identity"

int ident_load(const char *data_dir, struct ident *out, char *errmsg)
{
    char path[4200], line[256];
    FILE *f;
    bool have_node = false, have_dir = false, have_magic = false;
    snprintf(path, sizeof path, "%s/" IDENT__FILE, data_dir);
    memset(out, 0, sizeof *out);
    f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT) {
            return TALLY_NOTFOUND;
        }
        return err_os(errmsg, errno, "open %s", path);
    }
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned version;
        if (sscanf(line, "tally-identity %u", &version) == 1) {
            have_magic = version >= 1;
        } else if (sscanf(line, "node_id %" SCNu64, &out->node_id) == 1) {
            have_node = true;
        } else if (sscanf(line, "directory_id %" SCNx64, &out->directory_id) == 1) {
            have_dir = true;
        } else {
            sscanf(line, "cluster_id %" SCNx64, &out->cluster_id);
        }
    }
    fclose(f);
    if (!have_magic || !have_node || !have_dir || out->node_id == 0) {
        return ERR_CORRUPT(errmsg, "%s is not a tally identity file (tally-identity, node_id "
                                   "and directory_id lines expected); restore it from a backup "
                                   "or move it away if this directory holds no data", path);
    }
    return 0;
}

int ident_save(const char *data_dir, const struct ident *id, char *errmsg)
{
    char path[4200], tmp[4220], text[256], why[ERR_MSG_SIZE];
    int rv, n;
    snprintf(path, sizeof path, "%s/" IDENT__FILE, data_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    n = snprintf(text, sizeof text,
                 "tally-identity 1\nnode_id %" PRIu64 "\ndirectory_id %016" PRIx64
                 "\ncluster_id %016" PRIx64 "\n",
                 id->node_id, id->directory_id, id->cluster_id);
    if ((rv = fs_write_synced(tmp, text, (size_t)n, errmsg)) != 0 ||
        (rv = fs_rename(tmp, path, errmsg)) != 0) {
        (void)fs_unlink(tmp, why); /* (the error above is the one to report) */
        return rv;
    }
    (void)fs_sync_dir(data_dir, why); /* best effort: the file itself is synced */
    return 0;
}

uint64_t ident_random(void)
{
    uint64_t v = 0;
    while (v == 0) {
        if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            v = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^
                ((uint64_t)getpid() << 32);
        }
    }
    return v;
}
