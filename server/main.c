/* main.c: dfotad's command line and life cycle: configuration, sockets,
 * privileges, store, listeners; then signals: SIGHUP reloads, SIGTERM and
 * SIGINT stop gracefully. Every signal is taken synchronously by this
 * thread (sigtimedwait), so no handler runs in the middle of anything. */
#include "autoconfig.h"

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../api/token.h"
#include "../fleet/delivery.h"
#include "../fleet/fleet.h"
#include "../net/tls_gnutls.h"
#include "../net/tls_set.h"
#include "../store/store.h"
#include "../util/config.h"
#include "../util/log.h"
#include "admin/admin_conf.h"
#include "cli.h"
#include "fronts.h"
#include "listener.h"
#include "server_conf.h"

struct daemon_state {
  const char *conf_file;
  char **overrides;
  int n_overrides;
  struct config *conf;
  struct server_conf *srv; /* conf's [server] */
  struct store *store;
  struct fleet *fleet;
  struct listener_set active, retired;
  char token[MAX_TOKEN_LEN + 1];
};

static void usage(FILE *out)
{
  fprintf(out, "usage: dfotad [-c FILE] [-t] [--set SECTION.KEY=VALUE]... [-V] [-h]\n"
               "       dfotad [-c FILE] [--set ...] --backup DIR | --restore DIR\n"
               "  -c, --config FILE   configuration file (default: embedded defaults)\n"
               "  -t, --test          check the configuration, certificates and token, then exit\n"
               "      --set S.K=V     override one configuration value (repeatable)\n"
               "  -V, --version       print the version, and the libraries' versions\n"
               "      --backup DIR    copy the state directory (also of a running dfotad) to DIR\n"
               "      --restore DIR   fill the empty state directory from backup DIR\n"
               "  -h, --help          this text\n"
               "Signals: SIGHUP reloads configuration and certificates; SIGTERM stops.\n");
}

/* -t prints bare "FILE:LINE: message" lines; a daemon failing to start
 * logs them like everything else. */
static int checking_only;

static void print_errors(const struct config_errors *errs)
{
  for (int i = 0; i < errs->n; i++) {
    if (checking_only)
      fprintf(stderr, "%s\n", errs->msg[i]);
    else
      log_error("%s", errs->msg[i]);
  }
  if (errs->dropped > 0)
    fprintf(stderr, "(%d more errors)\n", errs->dropped);
}

/* Loads and checks everything a configuration needs that can be checked
 * without binding: the file, and the certificates and keys of every TLS
 * front that listens, read once and built into the TLS sets the fronts
 * will take (tls). NULL on error. */
static struct config *load_checked(struct daemon_state *ds, struct front_tls_sets *tls,
                                   struct config_errors *errs)
{
  struct config *c = dfotad_config_load(ds->conf_file, ds->overrides, ds->n_overrides, errs);

  tls->n = 0;
  if (c == NULL)
    return NULL;
  if (fronts_tls_build(c, tls, errs) < 0) {
    config_free(c);
    return NULL;
  }
  return c;
}

static struct server_conf *server_of(const struct config *c) { return config_section(c, "server"); }

/* Descriptors the configuration may need at once: one per connection of
 * every front that listens (HTTP(S) fronts take a few more, refused at
 * once), the admin API's, and a reserve for the store, logs and sockets. */
static unsigned long long fd_budget(const struct config *c)
{
  unsigned long long n = FD_RESERVE;

  for (const struct front_row *const *r = fronts_table; *r; r++) {
    const struct front_conf *fc = front_conf_of(c, *r);
    if (fc != NULL && fc->listen.n > 0)
      n += (unsigned long long)fc->connection_limit + FRONT_FD_ROOM +
           (unsigned long long)fc->listen.n;
  }
  return n;
}

/* Raises the soft descriptor limit to what c needs (and the hard one,
 * when we may). A limit too low for the connection limits is an error
 * now, not descriptors running out under load. 0, or -1 with an error. */
static int fd_limit(const struct config *c, int apply, struct config_errors *errs)
{
  unsigned long long need = fd_budget(c);
  struct rlimit rl;

  if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
    return 0;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= need)
    return 0;
  if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need) {
    struct rlimit up = {need, need};
    if (!apply && geteuid() == 0)
      return 0; /* root raises it at start */
    if (!apply || setrlimit(RLIMIT_NOFILE, &up) < 0) {
      config_errors_add(errs,
                        "%s: the connection limits need %llu descriptors, the hard limit is %llu: "
                        "raise it (ulimit -Hn, systemd LimitNOFILE=) or lower connection_limit",
                        c->source, need, (unsigned long long)rl.rlim_max);
      return -1;
    }
    return 0;
  }
  rl.rlim_cur = need;
  if (apply && setrlimit(RLIMIT_NOFILE, &rl) < 0) {
    config_errors_add(errs, "%s: cannot raise the descriptor limit to %llu: %s", c->source, need,
                      strerror(errno));
    return -1;
  }
  return 0;
}

/* What a starting front is given. */
static struct front_env env_of(struct daemon_state *ds, const struct config *c, const char *token,
                               const struct front_tls_sets *tls)
{
  const struct fleet_conf *fl = config_section(c, "fleet");
  struct front_env env = {c, ds->store, ds->fleet, token, fl->token_header, tls->set, tls->n};
  return env;
}

/* What the fleet takes from the configuration, at start and on reload. */
static void configure_fleet(struct daemon_state *ds, const struct config *c)
{
  const char *bases[PROTO_COUNT];
  const struct fleet_conf *fl = config_section(c, "fleet");
  struct fleet_limits l = {fl->events_per_device, fl->report_lines, fl->recheck_interval * 1000,
                           fl->auth_failures, fl->psk_generate_bytes};

  listeners_bases(c, bases);
  delivery_set_bases(ds->fleet, bases);
  fleet_set_limits(ds->fleet, &l);
}

static void drop_privileges(const char *user)
{
  struct passwd *pw;

  if (user[0] == '\0' || geteuid() != 0)
    return;
  pw = getpwnam(user);
  if (pw == NULL)
    fatal("user %s: no such user", user);
  if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
    fatal("cannot become user %s: %s", user, strerror(errno));
  if (setuid(0) == 0)
    fatal("dropped privileges could be regained");
  log_info("running as user %s", user);
}

static void reload(struct daemon_state *ds)
{
  struct config_errors errs = {0};
  struct listener_set next;
  struct front_tls_sets tls;
  struct front_env env;
  struct config *c;
  char token[MAX_TOKEN_LEN + 1];

  log_info("reload: reading %s", ds->conf_file ? ds->conf_file : "(defaults)");
  c = load_checked(ds, &tls, &errs);
  if (c == NULL)
    goto refused;
  /* a key a reload cannot apply is refused, never ignored */
  config_reload_check(ds->conf, c, &errs);
  if (errs.n == 0)
    fd_limit(c, 1, &errs);
  if (errs.n == 0)
    token_load(((const struct admin_conf *)config_section(c, "admin"))->token_file, 1, token,
               sizeof(token), &errs);
  if (errs.n > 0 || listeners_bind(c, &ds->active, &next, &errs) < 0)
    goto refused_free;
  env = env_of(ds, c, token, &tls);
  if (listeners_start(&next, &env, &ds->active, &ds->retired, &errs) < 0)
    goto refused_free;
  fronts_tls_release(&tls); /* the fronts hold what they use */
  ds->active = next;
  configure_fleet(ds, c);
  config_free(ds->conf);
  ds->conf = c;
  ds->srv = server_of(c);
  memcpy(ds->token, token, sizeof(token));
  explicit_bzero(token, sizeof(token));
  log_set_level(ds->srv->log_level);
  log_info("reload done");
  return;
refused_free:
  explicit_bzero(token, sizeof(token));
  fronts_tls_release(&tls);
  config_free(c);
refused:
  for (int i = 0; i < errs.n; i++)
    log_error("reload refused: %s", errs.msg[i]);
  log_error("reload refused: keeping the running configuration");
  config_errors_clear(&errs);
}

static void shutdown_gracefully(struct daemon_state *ds)
{
  struct timespec start, now;

  listeners_quiesce(&ds->active, &ds->retired);
  log_info("stopping: %d transfers in flight get up to %d s", delivery_in_flight(),
           ds->srv->shutdown_timeout);
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (;;) {
    listeners_tick(&ds->retired, 0);
    if (listeners_reap(&ds->retired, 0) == 0)
      break;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec - start.tv_sec >= ds->srv->shutdown_timeout) {
      log_warn("stopping: %d transfers cut off", delivery_in_flight());
      break;
    }
    usleep(50 * 1000);
  }
  listeners_tick(&ds->retired, 1);
  listeners_reap(&ds->retired, 1);
}

/* Frees what an early exit (usage, -V, -t, a start-up error) leaves. */
static int leave(struct daemon_state *ds, struct config_errors *errs, int code)
{
  config_free(ds->conf);
  ds->conf = NULL;
  config_errors_clear(errs);
  free(ds->overrides);
  ds->overrides = NULL;
  explicit_bzero(ds->token, sizeof(ds->token));
  return code;
}

int main(int argc, char **argv)
{
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},  {"test", no_argument, NULL, 't'},
      {"set", required_argument, NULL, 's'},     {"version", no_argument, NULL, 'V'},
      {"help", no_argument, NULL, 'h'},          {"backup", required_argument, NULL, 'B'},
      {"restore", required_argument, NULL, 'R'}, {NULL, 0, NULL, 0},
  };
  struct daemon_state ds = {0};
  struct config_errors errs = {0};
  struct front_env env;
  struct front_tls_sets tls = {0};
  int test_only = 0, opt;
  const char *backup_dir = NULL, *restore_dir = NULL;
  sigset_t sigs;
  const char *token_file = "";
  char err[512];

  ds.overrides = calloc((size_t)argc, sizeof(char *));
  if (ds.overrides == NULL)
    return 1;
  while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
    switch (opt) {
    case 'c': ds.conf_file = optarg; break;
    case 't': test_only = checking_only = 1; break;
    case 's': ds.overrides[ds.n_overrides++] = optarg; break;
    case 'V': version_print(stdout); return leave(&ds, &errs, 0);
    case 'B': backup_dir = optarg; break;
    case 'R': restore_dir = optarg; break;
    case 'h': usage(stdout); return leave(&ds, &errs, 0);
    default: usage(stderr); return leave(&ds, &errs, 1);
    }
  }
  if (optind != argc || (backup_dir && restore_dir) || ((backup_dir || restore_dir) && test_only)) {
    usage(stderr);
    return leave(&ds, &errs, 1);
  }
  if (backup_dir || restore_dir)
    return leave(&ds, &errs,
                 backup_cli(ds.conf_file, ds.overrides, ds.n_overrides, backup_dir, restore_dir));

  ds.conf = load_checked(&ds, &tls, &errs);
  if (ds.conf != NULL) {
    ds.srv = server_of(ds.conf);
    token_file = ((const struct admin_conf *)config_section(ds.conf, "admin"))->token_file;
    fd_limit(ds.conf, !test_only, &errs);
  }
  if (ds.conf != NULL && test_only && access(token_file, F_OK) == 0)
    token_load(token_file, 0, ds.token, sizeof(ds.token), &errs);
  if (ds.conf == NULL || errs.n > 0) {
    fronts_tls_release(&tls);
    print_errors(&errs);
    if (test_only)
      fprintf(stderr, "configuration %s: errors found\n",
              ds.conf_file ? ds.conf_file : "(defaults)");
    return leave(&ds, &errs, 1);
  }
  if (test_only) {
    fronts_tls_release(&tls);
    printf("configuration %s: ok\n", ds.conf->source);
    return leave(&ds, &errs, 0);
  }
  log_set_level(ds.srv->log_level);

  /* signals are taken by sigtimedwait below; every thread inherits the mask */
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGHUP);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);

  if (listeners_bind(ds.conf, NULL, &ds.active, &errs) < 0) {
    fronts_tls_release(&tls);
    print_errors(&errs);
    return leave(&ds, &errs, 1);
  }
  drop_privileges(ds.srv->user);
  {
    const struct store_conf *sc = config_section(ds.conf, "store");
    if (store_open_nodes(ds.srv->state_dir, sc->backend == STORE_POSTGRESQL ? sc->postgresql : NULL,
                         sc->nodes == STORE_NODES_SHARED, sc->flush_interval_ms, &ds.store, err,
                         sizeof(err)) < 0)
      fatal("store: %s", err);
  }
  log_info("state directory: %s (database: %s)", ds.srv->state_dir, store_backend(ds.store));
  if (fleet_open(ds.store, &ds.fleet, err, sizeof(err)) < 0)
    fatal("fleet: %s", err);
  if (fleet_psk_open(ds.fleet, ds.srv->state_dir, err, sizeof(err)) < 0)
    fatal("fleet: %s", err);
  if (token_load(token_file, 1, ds.token, sizeof(ds.token), &errs) < 0) {
    fronts_tls_release(&tls);
    print_errors(&errs);
    listeners_discard(&ds.active);
    fleet_close(ds.fleet);
    store_close(ds.store);
    return leave(&ds, &errs, 1);
  }
  log_info("admin token file: %s", token_file);
  configure_fleet(&ds, ds.conf);
  env = env_of(&ds, ds.conf, ds.token, &tls);
  if (listeners_start(&ds.active, &env, NULL, &ds.retired, &errs) < 0) {
    fronts_tls_release(&tls);
    print_errors(&errs);
    fleet_close(ds.fleet);
    store_close(ds.store);
    tls_slot_clear(&tls_gnutls_slot);
    return leave(&ds, &errs, 1);
  }
  fronts_tls_release(&tls); /* the fronts hold what they use */
  log_info("dfotad ready");
  notify_ready();

  for (;;) {
    struct timespec tick = {0, 200 * 1000 * 1000};
    int sig = sigtimedwait(&sigs, NULL, &tick);

    if (sig == SIGHUP) {
      notify_reloading();
      reload(&ds);
      notify_ready();
    } else if (sig == SIGTERM || sig == SIGINT) {
      log_info("signal %d: stopping", sig);
      notify_stopping();
      break;
    }
    notify_watchdog();
    listeners_tick(&ds.active, 0);
    listeners_tick(&ds.retired, 0);
    listeners_reap(&ds.retired, 0);
    fleet_tick(ds.fleet);
  }
  shutdown_gracefully(&ds);
  store_sync(ds.store); /* the fleet's last changes */
  fleet_close(ds.fleet);
  store_close(ds.store);
  tls_slot_clear(&tls_gnutls_slot);
  explicit_bzero(ds.token, sizeof(ds.token));
  config_free(ds.conf);
  free(ds.overrides);
  log_info("stopped");
  return 0;
}
