/* paths.c: Dijkstra over versions, with (bytes, hops) as the cost. Graphs
 * are small (a model's packages), so the quadratic form is plenty. */
#include "autoconfig.h"

#include "paths.h"

#include <stdlib.h>
#include <string.h>

struct node {
  const char *version;
  uint64_t bytes;
  int hops;
  int via; /* edge index that reached it, -1 for none */
  int done;
};

static int node_index(struct node *nodes, int *n, const char *v)
{
  for (int i = 0; i < *n; i++)
    if (strcmp(nodes[i].version, v) == 0)
      return i;
  nodes[*n] = (struct node){v, UINT64_MAX, 0, -1, 0};
  return (*n)++;
}

static int better(uint64_t b1, int h1, uint64_t b2, int h2)
{
  return b1 < b2 || (b1 == b2 && h1 < h2);
}

int path_find(const struct path_edge *edges, int n, const char *src, const char *dst, int *hops,
              int max_hops, uint64_t *total)
{
  struct node *nodes;
  int nn = 0, s, d, count, rc = -1;

  if (strcmp(src, dst) == 0) {
    *total = 0;
    return 0;
  }
  nodes = calloc((size_t)(2 * n + 2), sizeof(*nodes));
  if (nodes == NULL)
    return -1;
  s = node_index(nodes, &nn, src);
  d = node_index(nodes, &nn, dst);
  for (int i = 0; i < n; i++) {
    node_index(nodes, &nn, edges[i].from);
    node_index(nodes, &nn, edges[i].to);
  }
  nodes[s].bytes = 0;
  for (;;) {
    int u = -1;
    for (int i = 0; i < nn; i++)
      if (!nodes[i].done && nodes[i].bytes != UINT64_MAX &&
          (u < 0 || better(nodes[i].bytes, nodes[i].hops, nodes[u].bytes, nodes[u].hops)))
        u = i;
    if (u < 0 || u == d)
      break;
    nodes[u].done = 1;
    for (int e = 0; e < n; e++) {
      int v;
      uint64_t b;
      if (strcmp(edges[e].from, nodes[u].version) != 0)
        continue;
      v = node_index(nodes, &nn, edges[e].to);
      if (nodes[v].done || edges[e].size > UINT64_MAX - nodes[u].bytes)
        continue;
      b = nodes[u].bytes + edges[e].size;
      if (nodes[v].bytes == UINT64_MAX ||
          better(b, nodes[u].hops + 1, nodes[v].bytes, nodes[v].hops)) {
        nodes[v].bytes = b;
        nodes[v].hops = nodes[u].hops + 1;
        nodes[v].via = e;
      }
    }
  }
  if (nodes[d].bytes == UINT64_MAX || nodes[d].hops > max_hops)
    goto out;
  count = nodes[d].hops;
  for (int v = d, i = count - 1; i >= 0; i--) {
    int e = nodes[v].via;
    hops[i] = e;
    v = node_index(nodes, &nn, edges[e].from);
  }
  *total = nodes[d].bytes;
  rc = count;
out:
  free(nodes);
  return rc;
}
