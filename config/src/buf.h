/* A growable text buffer with a hard size limit, used to build the outputs
 * before they are written. Once an append fails, the buffer stays failed
 * (err set) and further appends are ignored: callers check once at the end. */
#ifndef GEN_BUF_H
#define GEN_BUF_H

#include <stddef.h>

struct gen_buf {
	char *p;        /* NUL-terminated when len > 0 */
	size_t len, cap;
	size_t limit;   /* 0 = GEN_BUF_DEFAULT_LIMIT */
	int err;
};

#define GEN_BUF_DEFAULT_LIMIT (64u * 1024u * 1024u)

void gen_buf_free(struct gen_buf *b);
void gen_buf_add(struct gen_buf *b, const char *s, size_t n);
void gen_buf_puts(struct gen_buf *b, const char *s);
void gen_buf_printf(struct gen_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
