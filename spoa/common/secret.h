/* Secrets given indirectly in configuration files: "${NAME}" reads the
 * environment variable NAME, and a *_file key names a file holding the
 * secret. The value itself never appears in an error message. */
#ifndef SPOGATE_SECRET_H
#define SPOGATE_SECRET_H

#include <stddef.h>

/* Resolves a secret into out (cap bytes, NUL-terminated). value is the
 * literal (or "${NAME}") from the file, NULL when absent; file is the
 * *_file path, NULL when absent; what names the key in messages. A file's
 * content is taken whole, without one trailing "\n" or "\r\n". Returns 0
 * (out is "" when neither is given) or -1 with a message in err. */
int secret_resolve(const char *value, const char *file, const char *what,
                   char *out, size_t cap, char *err, size_t errlen);

#endif
