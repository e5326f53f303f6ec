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
/* Final flush, then stops and frees the writer. */
void writer_stop(struct writer *w);

#endif
