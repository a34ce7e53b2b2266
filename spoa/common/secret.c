/* Secrets from the environment or a file (see secret.h). */
#include "secret.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "${NAME}" with NAME = [A-Za-z_][A-Za-z0-9_]*: copies NAME into name. */
static int env_ref(const char *v, char *name, size_t cap)
{
	size_t n = strlen(v), i;

	if (n < 4 || v[0] != '$' || v[1] != '{' || v[n - 1] != '}' || n - 3 >= cap)
		return 0;
	if (v[2] >= '0' && v[2] <= '9')
		return 0;
	for (i = 2; i < n - 1; i++)
		if (!(v[i] == '_' || (v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= 'a' && v[i] <= 'z') ||
		      (v[i] >= '0' && v[i] <= '9')))
			return 0;
	memcpy(name, v + 2, n - 3);
	name[n - 3] = '\0';
	return 1;
}

static int put(char *out, size_t cap, const char *s, size_t n, const char *what,
               char *err, size_t errlen)
{
	if (n >= cap) {
		snprintf(err, errlen, "\"%s\": the secret is longer than %zu bytes", what, cap - 1);
		return -1;
	}
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

int secret_resolve(const char *value, const char *file, const char *what,
                   char *out, size_t cap, char *err, size_t errlen)
{
	char name[128], buf[4096];
	const char *env;
	size_t n;
	FILE *f;

	out[0] = '\0';
	if (value && value[0] && file) {
		snprintf(err, errlen, "\"%s\" and \"%s_file\": give one of them", what, what);
		return -1;
	}
	if (file) {
		f = fopen(file, "rb");
		if (!f) {
			snprintf(err, errlen, "\"%s_file\": %s: %s", what, file, strerror(errno));
			return -1;
		}
		n = fread(buf, 1, sizeof(buf), f);
		if (ferror(f) || (n == sizeof(buf) && fgetc(f) != EOF)) {
			fclose(f);
			snprintf(err, errlen, "\"%s_file\": %s: unreadable or longer than %zu bytes",
			         what, file, sizeof(buf) - 1);
			return -1;
		}
		fclose(f);
		if (n > 0 && buf[n - 1] == '\n')
			n--;
		if (n > 0 && buf[n - 1] == '\r')
			n--;
		if (memchr(buf, '\0', n)) {
			snprintf(err, errlen, "\"%s_file\": %s: holds a NUL byte", what, file);
			return -1;
		}
		return put(out, cap, buf, n, what, err, errlen);
	}
	if (!value)
		return 0;
	if (env_ref(value, name, sizeof(name))) {
		env = getenv(name);
		if (!env) {
			snprintf(err, errlen, "\"%s\": the environment variable %s is not set", what, name);
			return -1;
		}
		return put(out, cap, env, strlen(env), what, err, errlen);
	}
	return put(out, cap, value, strlen(value), what, err, errlen);
}
