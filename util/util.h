/* util.h: small helpers every layer uses, each written once: hashing for
 * hash tables, hex and base32 text, random identifiers, clocks and time
 * formatting. */
#ifndef DFOTAD_UTIL_H
#define DFOTAD_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a of a NUL-terminated string. */
uint32_t hash_str(const char *s);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void hex_encode(const unsigned char *in, size_t n, char *out);
/* The value of a hex digit, -1 for anything else. */
int hex_digit(char c);
/* Parses 2n hex digits into n bytes; -1 when the text is not that. */
int hex_decode(const char *in, unsigned char *out, size_t n);

/* n random characters of [a-z2-7] (5 bits each) and a NUL into out.
 * Exits through fatal() when the system has no randomness to give. */
void random_base32(char *out, int n);
/* The same characters from n bytes the caller drew (in bulk: one
 * RAND_bytes call for many identifiers); only the low 5 bits are used. */
void base32_from(const unsigned char *r, char *out, int n);

/* Wall-clock and monotonic milliseconds; monotonic microseconds. */
int64_t now_ms(void);
int64_t mono_ms(void);
/* The CPUs this process may run on (its affinity: taskset, a cpuset),
 * at least 1: what "threads = 0, one per CPU" counts. */
int usable_cpus(void);
int64_t mono_us(void);

/* "2026-11-24T06:50:00Z" (ms <= 0: ""), and with milliseconds:
 * "2026-11-24T06:50:00.123Z". */
void time_iso(int64_t ms, char *out, size_t len);
void time_iso_ms(int64_t ms, char *out, size_t len);
/* IMF-fixdate of unix seconds: "Sun, 06 Nov 1994 08:49:37 GMT". */
void time_http(int64_t sec, char *out, size_t len);

/* Whether s holds only printable ASCII (0x21..0x7e, and spaces when
 * spaces is set) and is at most max bytes long. */
int text_printable(const char *s, size_t max, int spaces);

#endif
