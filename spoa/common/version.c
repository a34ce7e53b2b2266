/* --version of every binary. */
#include "version.h"

void version_print(FILE *f, const char *prog)
{
	fprintf(f, "%s %s (spogate; SPOP 2.0)\n", prog, SPOGATE_VERSION);
}
