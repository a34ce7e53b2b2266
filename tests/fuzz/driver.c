/*
 * Replays fuzz inputs without libFuzzer: every file named on the command
 * line, or every file of a directory named there, goes once through
 * LLVMFuzzerTestOneInput(). The suite links each tests/fuzz/fuzz_*.c with
 * this driver and runs it over its seed corpus (tests/unit/test_fuzz_corpus.sh),
 * so a target that no longer builds or crashes on its seeds fails `make
 * test`, under the sanitizers too. Prints one TAP line per input.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define INPUT_MAX (1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n_run;

/* Reads path whole into a malloc'd buffer of exactly its size (so a read
 * past the end is an ASan error, as under libFuzzer). */
static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf, *exact;
	size_t n;

	if (!f) {
		printf("not ok %d - %s: cannot open\n", ++n_run, path);
		return -1;
	}
	buf = malloc(INPUT_MAX);
	n = buf ? fread(buf, 1, INPUT_MAX, f) : 0;
	fclose(f);
	if (!buf) {
		printf("not ok %d - %s: out of memory\n", ++n_run, path);
		return -1;
	}
	/* Exactly n bytes, so a read past the input is an ASan error. */
	exact = malloc(n ? n : 1);
	if (exact)
		memcpy(exact, buf, n);
	free(buf);
	if (!exact) {
		printf("not ok %d - %s: out of memory\n", ++n_run, path);
		return -1;
	}
	LLVMFuzzerTestOneInput(exact, n);
	free(exact);
	printf("ok %d - %s (%zu bytes)\n", ++n_run, path, n);
	fflush(stdout);
	return 0;
}

static int compare(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files of a directory in name order, so runs are reproducible. */
static int run_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL, path[4096];
	size_t n = 0, cap = 0, i;
	int rc = 0;

	if (!d)
		return run_file(dir);
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **p = realloc(names, (cap = cap ? cap * 2 : 64) * sizeof(*names));

			if (!p)
				break;
			names = p;
		}
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), compare);
	for (i = 0; i < n; i++) {
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && run_file(path) < 0)
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

int main(int argc, char **argv)
{
	int i, rc = 0;

	for (i = 1; i < argc; i++)
		if (run_dir(argv[i]) < 0)
			rc = 1;
	if (n_run == 0) {
		printf("not ok 1 - no input\n");
		return 1;
	}
	printf("1..%d\n", n_run);
	return rc;
}
