/* resp_cache.h: libmicrohttpd responses for package bodies, built once
 * and queued again on every connection that asks the same bytes.
 *
 * Why: a response object costs about twenty allocations (the object, and
 * for each of its six headers an entry, the name and the value copied,
 * each checked for CR/LF), more user-space time than the rest of a 2 KiB
 * range. A libmicrohttpd response is reference counted and may be queued
 * on many connections at once; once built, its headers and body are only
 * read. Devices of a rollout ask the same ranges of the same package (a
 * module's fixed request size from byte 0), so one response serves many.
 *
 * Ownership: an entry holds one reference to its response and one to its
 * package, so a package pointer in the cache always names the package it
 * was built for (the response itself keeps whatever its body needs: the
 * mapping's package or its own descriptor). Entries of deleted, damaged
 * or idle packages are dropped by resp_cache_sweep; resp_cache_free drops
 * all. */
#ifndef DFOTAD_RESP_CACHE_H
#define DFOTAD_RESP_CACHE_H

#include <microhttpd.h>
#include <stdint.h>

#include "../../fleet/delivery.h" /* struct package, package_ref */

struct resp_cache;

/* Builds the response for (p, start, len, status); NULL: out of memory.
 * ctx: resp_cache_new's. The cache takes the response over. */
typedef struct MHD_Response *(*resp_build_fn)(void *ctx, struct package *p, uint64_t start,
                                              uint64_t len, unsigned status);

/* entries: rounded up to a power of two (at least 2); NULL: out of memory. */
struct resp_cache *resp_cache_new(unsigned entries, resp_build_fn build, void *ctx);

/* Queues the response for (p, start, len, status, owner) on c, built by
 * the cache's build function when no entry has it. owner: a further part
 * of the key (a thread, for responses only its connections may share; 0
 * for any). Returns what MHD_queue_response returned, or MHD_NO when out
 * of memory. Never adds a header to a response it queued before: a
 * caller that needs another header (Connection: close) builds its own. */
enum MHD_Result resp_cache_queue(struct resp_cache *rc, struct MHD_Connection *c, struct package *p,
                                 uint64_t start, uint64_t len, unsigned status, uintptr_t owner);

/* Asks the processor for the memory of the response resp_cache_queue
 * would queue for the same key, if the cache has one. A cached response
 * is a dozen or more cache lines (libmicrohttpd's object, each header's
 * list node, name and value), mostly not in the processor's caches when
 * thousands of ranges are asked at random, and libmicrohttpd reads them
 * at the send by walking its header list: one miss after the other.
 * Asked for together, before the request's other work, they arrive at
 * once. Only a hint: nothing is read through it. */
void resp_cache_prefetch(struct resp_cache *rc, const struct package *p, uint64_t start,
                         uint64_t len, unsigned status, uintptr_t owner);

/* Drops the entries of deleted or damaged packages, and those unused for
 * idle_ms; at most every interval it is called with (cheap otherwise). */
void resp_cache_sweep(struct resp_cache *rc, int64_t now_ms, int64_t idle_ms);

/* Drops every entry (libmicrohttpd frees each response once its last
 * connection is done with it) and the cache. NULL: nothing. */
void resp_cache_free(struct resp_cache *rc);

#endif
