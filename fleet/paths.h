/* paths.h: upgrade paths. A model's packages form a graph of versions (a
 * delta applies to exactly one source version); a device at A is brought to
 * X through the path with the fewest total bytes. */
#ifndef DFOTAD_PATHS_H
#define DFOTAD_PATHS_H

#include <stdint.h>

struct path_edge {
  const char *from, *to;
  uint64_t size;
};

/* Finds the cheapest path from src to dst over edges[0..n). On success
 * returns the number of hops (0 when src is dst) and fills hops[] with edge
 * indexes, first hop first; *total gets the bytes. Ties go to fewer hops.
 * -1: no path (or longer than max_hops). */
int path_find(const struct path_edge *edges, int n, const char *src, const char *dst, int *hops,
              int max_hops, uint64_t *total);

#endif
