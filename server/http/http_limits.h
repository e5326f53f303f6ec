/* http_limits.h: the HTTP(S) front's limits and defaults. */
#ifndef DFOTAD_HTTP_LIMITS_H
#define DFOTAD_HTTP_LIMITS_H

#include "../../net/front.h"

#define DEF_HTTP_LISTEN "127.0.0.1:8080"
/* libmicrohttpd's pool per device connection (connection_memory): it
 * holds the request's headers and ours, and is all written to (about
 * 2 KB more per connection go to libmicrohttpd and us), so it is most of
 * what a slow download costs: 2 KiB takes requests of up to about 1.3 KB
 * of headers, against modules' 200 to 500 bytes */
#define DEF_CONNECTION_MEMORY_TEXT "2K"
#define MIN_CONNECTION_MEMORY 1536
#define MAX_CONNECTION_MEMORY (1024 * 1024)
#define DEF_HEADER_TIMEOUT_TEXT "15" /* seconds for a connection's first headers */
#define DEF_HEADER_PER_IP_TEXT "32"  /* connections still sending headers per address */
/* TCP_NOTSENT_LOWAT of device connections (send_lowat): without it the
 * kernel lets each socket's unsent queue grow with its autotuned send
 * buffer, about 190 KB per slow download (2 GB for 10,000); a slow reader
 * then wakes us every send_lowat/2 bytes it drains */
#define DEF_SEND_LOWAT_TEXT "16K"
#define MAX_SEND_LOWAT (64 * 1024 * 1024)
/* connections libmicrohttpd takes beyond connection_limit, so that one
 * over the limit is refused at once */
#define HTTP_REFUSE_ROOM FRONT_FD_ROOM
#define MAX_REQUEST_HEADERS 64 /* header fields of a device request */
/* a whole package from this size goes out with sendfile() over plain
 * HTTP (a smaller one from the mapping, in one write with its headers) */
#define HTTP_SENDFILE_MIN (64 * 1024)
/* whole-file responses kept built per listener, one per package and
 * thread, each holding a descriptor of the package's file: few, so that
 * descriptors stay about one per connection */
#define HTTP_WHOLE_SHARED 8
/* responses of a plain HTTP connection measured together (http_settle.c):
 * one TCP_INFO settles this many, all acknowledged when the device asks
 * again; their progress reaches the core this many responses (or one
 * tick) later. One larger than HTTP_SETTLE_BATCH_LEN is measured alone
 * (what came before first): a cut one counts exactly what arrived. */
#define HTTP_SETTLE_BATCH 16
#define HTTP_SETTLE_BATCH_LEN (8 * 1024)
/* download responses kept built per listener (resp_cache.h): about 1 KB
 * each (libmicrohttpd's object and its five headers), so at most 16 MB,
 * and only while asked (HTTP_RESP_CACHE_IDLE_MS). A rollout's devices ask
 * a package's ranges in the same steps from byte 0: 16,384 entries keep a
 * 10 MiB package's 2 KiB ranges (5,120) with room for the conflicts of
 * two ways, or 32 MiB of packages in 2 KiB steps; 4,096 missed a third
 * of such ranges, and a miss (building and freeing a response, two dozen
 * allocations) costs more than a hit's whole request */
#define HTTP_RESP_CACHE_ENTRIES 16384
/* an entry unused this long is dropped, and with it its hold on the
 * package's mapping (a deleted package's file is freed within this) */
#define HTTP_RESP_CACHE_IDLE_MS 30000

#endif
