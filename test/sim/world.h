/* The simulated world of test/sim: one thread, simulated time, a seeded
 * random source, one queue of events, a network of directed links, and a
 * raft_io per server whose "disk" is memory with real crash semantics.
 *
 * Why not raft_fixture (raft/fixture.h): its kill/revive keeps the raft
 * instance and its memory alive (a revived server does not load its
 * persisted state or replay its log into the FSM, which is the very path
 * tally's restarts take), its in-memory truncate assumes the log starts at
 * index 1 (wrong after a snapshot install), and it has no message loss,
 * reordering or one-way links. docs/testing.md, "Simulation".
 *
 * Crash semantics of the raft log: an append, truncate or snapshot put is
 * durable only once its completion event has fired (raft_uv fsyncs before
 * it calls back); sim_io_crash drops every request still queued. Term and
 * vote are durable at once (raft_uv writes them synchronously).
 *
 * Happy path of one step (world_step): pop the earliest event (time, then
 * the order it was queued), advance the clock, run it (a tick, a disk
 * completion, a send completion or a delivery), then fire the completed
 * raft requests of every running server, as raft_uv's loop handles do.
 * Failure modes: events of a server that crashed meanwhile carry an old
 * generation and are dropped (their memory freed); a message to a server
 * that is down, or over a cut link, is dropped at delivery. */
#ifndef TALLY_SIM_WORLD_H_
#define TALLY_SIM_WORLD_H_

#include <raft.h>
#include <stdbool.h>
#include <stdint.h>

#define WORLD_MAX_NODES 5

struct world;
struct sim_io;

/* Deterministic xorshift-style generator (splitmix64). */
uint64_t world_rand(struct world *w);
/* Uniform in [lo, hi] (hi >= lo). */
uint64_t world_range(struct world *w, uint64_t lo, uint64_t hi);
/* True with probability pct/100. */
bool world_chance(struct world *w, unsigned pct);

struct world *world_new(uint64_t seed);
void world_free(struct world *w);
raft_time world_now(const struct world *w);

/* Network: message i -> j is delivered only while the link is up (checked
 * at delivery); loss_pct of sends are dropped; each message takes a
 * latency drawn from [lat_min, lat_max] ms, so messages can overtake. */
void world_link(struct world *w, unsigned i, unsigned j, bool up);
bool world_link_up(const struct world *w, unsigned i, unsigned j);
void world_net(struct world *w, unsigned loss_pct, unsigned lat_min, unsigned lat_max);
/* The disk of server i completes nothing before @until (a stalled disk:
 * libraft 0.22's raft_uv retries failed writes until they succeed,
 * docs/raft.md section 3). */
void world_disk_stall(struct world *w, unsigned i, raft_time until);

/* Run the earliest event. False when there is none. */
bool world_step(struct world *w);

/* Server i's raft_io (persisted state kept across crashes). Filled in
 * the first time it is asked for. */
struct raft_io *world_io(struct world *w, unsigned i);
/* Tell the world which raft runs on server i (NULL: down), so that it can
 * fire its completed requests after each step. */
void world_attach(struct world *w, unsigned i, struct raft *r);
/* Crash server i: everything not yet durable is gone; the callbacks of its
 * pending requests fire with RAFT_CANCELED and its close callback fires,
 * so that raft_close completes. Call after raft_close(). */
void world_crash_io(struct world *w, unsigned i);
/* Server i's process ended inside a raft callback (tally's fsm exits on a
 * failed apply): nothing of it is called again, its pending requests are
 * dropped without callbacks, and the raft instance is left as it was (as
 * the process's memory would be). */
void world_abandon_io(struct world *w, unsigned i);
/* Messages server @from has sent to server @to since the start (lost ones
 * included): AppendEntries, those of them that carry entries, and
 * InstallSnapshot. Counting draws no random number. */
struct world_link_counts {
    uint64_t appends, with_entries, installs;
};
struct world_link_counts world_sent(const struct world *w, unsigned from, unsigned to);
/* Last index of the persisted raft log of server i (snapshot included). */
raft_index world_persisted_last(struct world *w, unsigned i);

/* libraft's own completion hook (hidden in libraft.so, present in
 * libraft.a): fires the callbacks of completed apply/barrier/transfer
 * requests. raft_uv calls it from its prepare and check handles. */
void LegacyFireCompletedRequests(struct raft *r);

#endif
