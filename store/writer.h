/* writer.h: the store's single writer thread. Hot paths never touch the
 * database: they update counters or mark records dirty; the writer commits
 * what changed in one transaction every interval. */
#ifndef DFOTAD_WRITER_H
#define DFOTAD_WRITER_H

struct writer;

/* Starts the thread; flush(arg) runs every interval_ms. NULL on failure. */
struct writer *writer_start(int interval_ms, void (*flush)(void *arg), void *arg);
/* Runs one flush now and returns once it has completed. */
void writer_sync(struct writer *w);
/* Asks for a flush now and returns at once; done(arg) runs on the writer's
 * thread once that flush (or a later one) has completed. For threads that
 * must not wait on the disk. 0, or -1 (done never runs: out of memory or
 * stopping). Tests only: DFOTAD_TEST_COMMIT_DELAY=FILE in the environment
 * makes every flush slower by the milliseconds written in FILE (a slow
 * disk a test turns on and off). */
int writer_sync_async(struct writer *w, void (*done)(void *arg), void *arg);
/* Final flush, then stops and frees the writer. */
void writer_stop(struct writer *w);

#endif
