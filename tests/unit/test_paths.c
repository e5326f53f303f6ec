/* test_paths.c: upgrade paths through intermediate deltas. */
#include "autoconfig.h"

#include "fleet/paths.h"
#include "unit.h"

int main(void)
{
  const struct path_edge e[] = {
      {"A", "X", 1000}, /* 0: direct but big */
      {"A", "B", 300},  /* 1 */
      {"B", "X", 400},  /* 2: A-B-X = 700 < 1000 */
      {"C", "D", 100},  /* 3 */
      {"D", "X", 100},  /* 4 */
      {"E", "F", 10},   /* 5: F leads nowhere */
      {"G", "X", 500},  /* 6 */
      {"G", "H", 250},  /* 7 */
      {"H", "X", 250},  /* 8: G-H-X = 500 = G-X: the tie goes to one hop */
      {"X", "A", 50},   /* 9: a downgrade edge must not confuse anything */
  };
  int n = (int)(sizeof(e) / sizeof(e[0])), hops[8];
  uint64_t total = 0;

  CHECK(path_find(e, n, "A", "X", hops, 8, &total) == 2 && hops[0] == 1 && hops[1] == 2 &&
        total == 700);
  CHECK(path_find(e, n, "C", "X", hops, 8, &total) == 2 && hops[0] == 3 && hops[1] == 4);
  CHECK(path_find(e, n, "B", "X", hops, 8, &total) == 1 && hops[0] == 2 && total == 400);
  CHECK(path_find(e, n, "G", "X", hops, 8, &total) == 1 && hops[0] == 6);
  CHECK(path_find(e, n, "E", "X", hops, 8, &total) == -1);
  CHECK(path_find(e, n, "Z", "X", hops, 8, &total) == -1);
  CHECK(path_find(e, n, "X", "X", hops, 8, &total) == 0 && total == 0);
  CHECK(path_find(e, n, "A", "X", hops, 1, &total) == -1); /* cheapest needs 2 hops */
  CHECK(path_find(e, 0, "A", "X", hops, 8, &total) == -1);
  return unit_done("test_paths");
}
