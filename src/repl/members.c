/* The cluster's membership as this node's Raft storage holds it: see
 * members.h for why it is tracked here and docs/raft.md for the rule. */
#include "repl/members.h"

#include <stddef.h>
#include <string.h>

static struct members *members__of(struct raft_io *io)
{
    return (struct members *)(void *)io; /* io is the first member */
}

/* Copy @src into @dst, which is initialised (empty) first. */
static int members__copy(struct raft_configuration *dst, const struct raft_configuration *src)
{
    raft_configuration_init(dst);
    for (unsigned i = 0; i < src->n; i++) {
        int rv = raft_configuration_add(dst, src->servers[i].id, src->servers[i].address,
                                        src->servers[i].role);
        if (rv != 0) {
            raft_configuration_close(dst);
            raft_configuration_init(dst);
            return rv;
        }
    }
    return 0;
}

static void members__set_base(struct members *m, const struct raft_configuration *conf,
                              raft_index index)
{
    raft_configuration_close(&m->base);
    if (members__copy(&m->base, conf) != 0) {
        m->failed = true;
    }
    m->base_index = index;
}

/* Remember the configuration of the RAFT_CHANGE entry at @index. */
static void members__change(struct members *m, raft_index index, const struct raft_buffer *buf)
{
    struct raft_configuration conf;
    raft_configuration_init(&conf);
    if (raft_configuration_decode(buf, &conf) != 0) {
        raft_configuration_close(&conf);
        m->failed = true;
        return;
    }
    if (m->n_changes == MEMBERS_KEPT) {
        /* The oldest is long committed: it becomes the base. */
        raft_configuration_close(&m->base);
        m->base = m->changes[0].conf;
        m->base_index = m->changes[0].index;
        memmove(&m->changes[0], &m->changes[1], (MEMBERS_KEPT - 1) * sizeof m->changes[0]);
        m->n_changes--;
    }
    m->changes[m->n_changes].index = index;
    m->changes[m->n_changes].conf = conf;
    m->n_changes++;
}

static void members__entries(struct members *m, raft_index first, const struct raft_entry *e,
                             size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (e[i].type == RAFT_CHANGE) {
            members__change(m, first + i, &e[i].buf);
        }
    }
}

/* Forget the changes at or above @index: their entries left the log. */
static void members__drop_from(struct members *m, raft_index index)
{
    while (m->n_changes > 0 && m->changes[m->n_changes - 1].index >= index) {
        m->n_changes--;
        raft_configuration_close(&m->changes[m->n_changes].conf);
    }
}

static int members__load(struct raft_io *io, raft_term *term, raft_id *voted_for,
                         struct raft_snapshot **snapshot, raft_index *start_index,
                         struct raft_entry **entries, size_t *n_entries)
{
    struct members *m = members__of(io);
    int rv = m->load(io, term, voted_for, snapshot, start_index, entries, n_entries);
    if (rv != 0) {
        return rv;
    }
    members__drop_from(m, 0);
    if (*snapshot != NULL) {
        members__set_base(m, &(*snapshot)->configuration, (*snapshot)->configuration_index);
    }
    members__entries(m, *start_index, *entries, *n_entries);
    m->next_index = *start_index + *n_entries;
    if (*n_entries == 0 && *snapshot != NULL) {
        m->next_index = (*snapshot)->index + 1;
    }
    return 0;
}

static int members__append(struct raft_io *io, struct raft_io_append *req,
                           const struct raft_entry entries[], unsigned n,
                           raft_io_append_cb cb)
{
    struct members *m = members__of(io);
    int rv = m->append(io, req, entries, n, cb);
    if (rv == 0) {
        /* Raft acts on a new configuration as soon as it is appended. */
        members__entries(m, m->next_index, entries, n);
        m->next_index += n;
    }
    return rv;
}

static int members__truncate(struct raft_io *io, raft_index index)
{
    struct members *m = members__of(io);
    int rv = m->truncate(io, index);
    if (rv == 0) {
        members__drop_from(m, index);
        if (index < m->next_index) {
            m->next_index = index;
        }
    }
    return rv;
}

static int members__snapshot_put(struct raft_io *io, unsigned trailing,
                                 struct raft_io_snapshot_put *req,
                                 const struct raft_snapshot *snapshot,
                                 raft_io_snapshot_put_cb cb)
{
    struct members *m = members__of(io);
    int rv = m->snapshot_put(io, trailing, req, snapshot, cb);
    if (rv == 0 && trailing == 0) {
        /* A snapshot installed from the leader replaces the whole log. */
        members__drop_from(m, 0);
        members__set_base(m, &snapshot->configuration, snapshot->configuration_index);
        m->next_index = snapshot->index + 1;
    }
    return rv;
}

void members_track(struct members *m)
{
    raft_configuration_init(&m->base);
    m->base_index = 0;
    m->n_changes = 0;
    m->next_index = 1;
    m->failed = false;
    m->load = m->io.load;
    m->append = m->io.append;
    m->truncate = m->io.truncate;
    m->snapshot_put = m->io.snapshot_put;
    m->io.load = members__load;
    m->io.append = members__append;
    m->io.truncate = members__truncate;
    m->io.snapshot_put = members__snapshot_put;
}

void members_close(struct members *m)
{
    members__drop_from(m, 0);
    raft_configuration_close(&m->base);
    raft_configuration_init(&m->base);
}

const struct raft_configuration *members_current(const struct members *m, uint64_t *index)
{
    if (m->n_changes > 0) {
        *index = m->changes[m->n_changes - 1].index;
        return &m->changes[m->n_changes - 1].conf;
    }
    *index = m->base_index;
    return &m->base;
}
