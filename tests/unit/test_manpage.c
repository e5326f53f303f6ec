/* test_manpage.c: dfotad.conf(5) and conf/dfotad.conf against the rows
 * of every config section (dfotad_sections()), so that neither can drift
 * from them.
 *
 * - doc/dfotad.conf.5: the block between the ".\" keys:begin" and
 *   ".\" keys:end" lines is generated from the rows (every section, every
 *   key, its type, bounds and default); it must be exactly what the table
 *   gives now. DFOTAD_UPDATE_MAN=1 tests/unit/test_manpage rewrites it.
 * - conf/dfotad.conf: every key of the table appears in its section, as an
 *   active line holding the default, or commented out ("#key = ...").
 *
 * Paths are taken from $top_srcdir (make check sets it), else ".". */
#include "autoconfig.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../server/fronts.h"
#include "../../util/config.h"
#include "unit.h"

#define BEGIN_MARK ".\\\" keys:begin"
#define END_MARK ".\\\" keys:end"

static char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "re");
  char *buf = NULL;
  size_t cap = 0, n = 0, r;

  if (f == NULL)
    return NULL;
  do {
    if (n + 65536 + 1 > cap) {
      cap = (n + 65536 + 1) * 2;
      buf = realloc(buf, cap);
      if (buf == NULL)
        abort();
    }
    r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
  } while (r > 0);
  fclose(f);
  buf[n] = '\0';
  *len = n;
  return buf;
}

/* Text lines of at most 72 bytes (mandoc's style), broken at blanks. */
static void wrap(FILE *out, const char *text)
{
  while (strlen(text) > 72) {
    int cut = 72;
    while (cut > 0 && text[cut] != ' ')
      cut--;
    if (cut == 0)
      break;
    fprintf(out, "%.*s\n", cut, text);
    text += cut + 1;
  }
  fprintf(out, "%s\n", text);
}

/* One row of one section, as the page and the example file show it. */
struct key {
  const char *section, *name, *type, *def, *help;
  enum conf_type t;
  enum conf_reload reload;
  const char *const *choices;
  long long min, max;
};

struct keys {
  struct key k[512];
  size_t n;
};

static void collect(const struct conf_section *sec, const struct conf_row *row, void *arg)
{
  struct keys *ks = arg;

  CHECK(ks->n < sizeof(ks->k) / sizeof(ks->k[0]));
  if (ks->n >= sizeof(ks->k) / sizeof(ks->k[0]))
    return;
  ks->k[ks->n++] = (struct key){.section = sec->name,
                                .name = row->name,
                                .type = config_type_name(row->type),
                                .def = row->def,
                                .help = row->help ? row->help : "",
                                .t = row->type,
                                .reload = row->reload,
                                .choices = row->choices,
                                .min = row->min,
                                .max = row->max};
}

/* Every key of every section, in the order of dfotad_sections(). */
static const struct keys *all_keys(void)
{
  static struct keys ks;

  if (ks.n == 0)
    config_each_row(dfotad_sections(), collect, &ks);
  return &ks;
}

/* The mdoc text of the table. */
static char *generate(void)
{
  char *text = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&text, &len);
  const char *section = "";
  const struct keys *ks = all_keys();

  fprintf(out, "%s\n", BEGIN_MARK);
  fprintf(out, ".\\\" generated from the config sections' rows: DFOTAD_UPDATE_MAN=1 "
               "tests/unit/test_manpage\n");
  for (size_t i = 0; i < ks->n; i++) {
    const struct key k = ks->k[i];
    if (strcmp(section, k.section) != 0) {
      if (section[0] != '\0')
        fprintf(out, ".El\n");
      section = k.section;
      fprintf(out, ".Ss \\&[%s]\\&\n.Bl -tag -width Ds\n", section);
    }
    if (k.t == T_CHOICE && k.choices != NULL) {
      /* the words themselves: "none|optional|required" */
      fprintf(out, ".It Cm %s No = Ar ", k.name);
      for (const char *const *w = k.choices; *w; w++)
        fprintf(out, "%s%s", w == k.choices ? "" : "|", *w);
      fprintf(out, "\n");
    } else {
      fprintf(out, ".It Cm %s No = Ar %s\n", k.name, k.type);
    }
    if (k.help[0] != '\0') {
      char line[512];
      int n = snprintf(line, sizeof(line), "%s", k.help);
      if (k.t == T_INT || k.t == T_SIZE) {
        if (k.max > 0)
          snprintf(line + n, sizeof(line) - (size_t)n, "; %lld to %lld.", k.min, k.max);
        else
          snprintf(line + n, sizeof(line) - (size_t)n, "; at least %lld.", k.min);
      } else if (k.help[strlen(k.help) - 1] != '.') {
        snprintf(line + n, sizeof(line) - (size_t)n, ".");
      }
      wrap(out, line);
    }
    if (k.reload == RELOAD_RESTART)
      fprintf(out, "Changes only with a restart: a reload that changes it is refused.\n");
    if (k.def == NULL && k.t == T_CUSTOM)
      fprintf(out, "No default; repeatable.\n");
    else if (k.def == NULL)
      fprintf(out, "No default.\n");
    else if (k.def[0] == '\0')
      fprintf(out, "Default: empty.\n");
    else {
      /* a long default (a TLS priority string) gets break points after
       * its colons, or man(1) cannot fit it in the line */
      fprintf(out, "Default:\n.Ql ");
      for (const char *c = k.def; *c; c++)
        fprintf(out, "%c%s", *c, *c == ':' && strlen(k.def) > 40 ? "\\:" : "");
      fprintf(out, " .\n");
    }
  }
  fprintf(out, ".El\n%s\n", END_MARK);
  fclose(out);
  return text;
}

static void check_man(const char *top)
{
  char path[4096];
  size_t len;
  char *man, *gen = generate(), *b, *e;

  snprintf(path, sizeof(path), "%s/doc/dfotad.conf.5", top);
  man = slurp(path, &len);
  CHECK(man != NULL);
  if (man == NULL) {
    free(gen);
    return;
  }
  b = strstr(man, BEGIN_MARK "\n");
  e = b ? strstr(b, END_MARK "\n") : NULL;
  CHECK(b != NULL && e != NULL);
  if (b != NULL && e != NULL) {
    size_t old_len = (size_t)(e + strlen(END_MARK "\n") - b);
    int same = old_len == strlen(gen) && memcmp(b, gen, old_len) == 0;
    const char *upd = getenv("DFOTAD_UPDATE_MAN");
    if (!same && upd != NULL && strcmp(upd, "1") == 0) {
      FILE *f = fopen(path, "we");
      CHECK(f != NULL);
      if (f != NULL) {
        fwrite(man, 1, (size_t)(b - man), f);
        fputs(gen, f);
        fputs(b + old_len, f);
        CHECK(fclose(f) == 0);
        printf("%s: keys block rewritten from the table\n", path);
        same = 1;
      }
    }
    if (!same)
      fprintf(stderr,
              "%s: the keys block differs from the config sections' rows; "
              "run DFOTAD_UPDATE_MAN=1 tests/unit/test_manpage and review the diff\n",
              path);
    CHECK(same);
  }
  free(man);
  free(gen);
}

/* Each key of the table in conf/dfotad.conf, in its section. */
static void check_conf(const char *top)
{
  char path[4096], line[4096], section[64] = "";
  const struct keys *ks = all_keys();
  size_t n = 0;
  FILE *f;
  struct seen {
    char section[64], name[64], value[1024];
    int active;
  } *seen = NULL;
  size_t n_seen = 0, cap = 0;

  snprintf(path, sizeof(path), "%s/conf/dfotad.conf", top);
  f = fopen(path, "re");
  CHECK(f != NULL);
  if (f == NULL)
    return;
  while (fgets(line, sizeof(line), f) != NULL) {
    char *p = line, *eq, *name, *value, *end;
    int active = 1;
    line[strcspn(line, "\r\n")] = '\0';
    if (sscanf(line, "[%63[^]]]", section) == 1)
      continue;
    if (*p == '#') {
      active = 0;
      p++;
    }
    eq = strchr(p, '=');
    if (eq == NULL || isspace((unsigned char)*p))
      continue;
    name = p;
    for (end = eq; end > name && isspace((unsigned char)end[-1]);)
      *--end = '\0';
    *eq = '\0';
    if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name) || name[0] == '\0')
      continue; /* prose */
    for (value = eq + 1; isspace((unsigned char)*value);)
      value++;
    if (n_seen == cap) {
      cap = cap ? cap * 2 : 128;
      seen = realloc(seen, cap * sizeof(*seen));
      if (seen == NULL)
        abort();
    }
    snprintf(seen[n_seen].section, sizeof(seen[n_seen].section), "%s", section);
    snprintf(seen[n_seen].name, sizeof(seen[n_seen].name), "%s", name);
    snprintf(seen[n_seen].value, sizeof(seen[n_seen].value), "%s", value);
    seen[n_seen].active = active;
    n_seen++;
  }
  fclose(f);
  for (size_t i = 0; i < ks->n; i++, n++) {
    const struct key k = ks->k[i];
    int found = 0, ok = 1;
    for (size_t j = 0; j < n_seen; j++) {
      if (strcmp(seen[j].section, k.section) != 0 || strcmp(seen[j].name, k.name) != 0)
        continue;
      found = 1;
      if (seen[j].active && (k.def == NULL || strcmp(seen[j].value, k.def) != 0) && k.t != T_LISTEN)
        ok = 0;
    }
    if (!found)
      fprintf(stderr, "%s: no line for [%s] %s\n", path, k.section, k.name);
    if (!ok)
      fprintf(stderr, "%s: an active [%s] %s line that is not the default \"%s\"\n", path,
              k.section, k.name, k.def ? k.def : "");
    CHECK(found);
    CHECK(ok);
  }
  CHECK(n > 50);
  free(seen);
}

int main(void)
{
  const char *top = getenv("top_srcdir");

  if (top == NULL || top[0] == '\0')
    top = ".";
  check_man(top);
  check_conf(top);
  return unit_done("test_manpage");
}
