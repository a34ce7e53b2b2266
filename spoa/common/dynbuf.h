/* A growable text buffer with a hard size limit (curl's dynbuf idea), shared
 * by the generator (its outputs) and the agent (/metrics, identities). Once
 * an append fails, the buffer stays failed (err set) and further appends
 * are ignored: callers check once at the end. A zeroed struct is empty. */
#ifndef SPOGATE_DYNBUF_H
#define SPOGATE_DYNBUF_H

#include <stddef.h>

struct dynbuf {
	char *p;        /* NUL-terminated when len > 0 */
	size_t len, cap;
	size_t limit;   /* 0 = DYNBUF_DEFAULT_LIMIT */
	int err;
};

#define DYNBUF_DEFAULT_LIMIT (64u * 1024u * 1024u)

void dynbuf_free(struct dynbuf *b);
void dynbuf_add(struct dynbuf *b, const char *s, size_t n);
void dynbuf_puts(struct dynbuf *b, const char *s);
void dynbuf_printf(struct dynbuf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
