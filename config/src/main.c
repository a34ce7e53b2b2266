/* spogate-gen: gateway YAML + registry data -> haproxy.cfg, spoe.conf,
 * agent.json. Exit 0 on success, 1 on invalid input (every problem printed
 * as FILE:LINE:COL: error: message), 2 on usage errors. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gen.h"
#include "version.h"

static int stat_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: spogate-gen -g gateway.yaml -r registry.yaml -o OUTDIR [options]\n"
		"       spogate-gen -g gateway.yaml -r registry.yaml --check\n"
		"       spogate-gen --reload MASTER_PID --run-dir DIR [--socket PATH]\n"
		"\n"
		"  -g, --gateway FILE      gateway YAML\n"
		"  -r, --registry FILE     registry data: YAML, JSON, or a Consul\n"
		"                          /v1/catalog/services export\n"
		"  -o, --out DIR           write haproxy.cfg, spoe.conf and agent.json here\n"
		"      --check             validate only, write nothing\n"
		"      --base-dir DIR      resolve relative paths of the YAML (jwks_file,\n"
		"                          pem_keys) against DIR (default: the YAML's dir)\n"
		"      --haproxy-dir DIR   where HAProxy will find spoe.conf (default: OUTDIR)\n"
		"      --run-dir DIR       directory of the stats socket and the server-state\n"
		"                          file (default: OUTDIR); must exist for --check\n"
		"      --consul-dns ADDR   DNS server for a Consul export (default 127.0.0.1:8600)\n"
		"      --haproxy-version V the oldest HAProxy the output must run on: 2.6\n"
		"                          (default), 3.0 or 3.2 (3.2: no version guards)\n"
		"      --reload PID        reload the HAProxy whose master is PID: save the\n"
		"                          server state, SIGUSR2, wait until the new worker\n"
		"                          serves; one reload at a time (DIR/reload.lock)\n"
		"      --socket PATH       stats socket for --reload (default DIR/haproxy.sock)\n"
		"      --timeout S         --reload fails after S seconds (default 30)\n"
		"  -q, --quiet             do not print warnings\n"
		"  -h, --help              this help\n"
		"      --version           print the version\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "gateway", required_argument, NULL, 'g' },
		{ "registry", required_argument, NULL, 'r' },
		{ "out", required_argument, NULL, 'o' },
		{ "check", no_argument, NULL, 'c' },
		{ "base-dir", required_argument, NULL, 'b' },
		{ "haproxy-dir", required_argument, NULL, 'H' },
		{ "run-dir", required_argument, NULL, 'R' },
		{ "consul-dns", required_argument, NULL, 'C' },
		{ "haproxy-version", required_argument, NULL, 'P' },
		{ "reload", required_argument, NULL, 'L' },
		{ "socket", required_argument, NULL, 'S' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct gen_opts o = { 0 };
	struct gen_reload_opts ro = { .timeout_ms = 30000 };
	struct gen_diags d;
	struct gen_output out;
	const char *outdir = NULL;
	char absout[PATH_MAX], err[512];
	int check = 0, quiet = 0, c, rc;

	while ((c = getopt_long(argc, argv, "g:r:o:qh", longopts, NULL)) != -1) {
		switch (c) {
		case 'g': o.gateway_file = optarg; break;
		case 'r': o.registry_file = optarg; break;
		case 'o': outdir = optarg; break;
		case 'c': check = 1; break;
		case 'b': o.base_dir = optarg; break;
		case 'H': o.haproxy_dir = optarg; break;
		case 'R': o.run_dir = optarg; break;
		case 'C': o.consul_dns = optarg; break;
		case 'P':
			if (strcmp(optarg, "2.6") == 0)
				o.haproxy_version = 26;
			else if (strcmp(optarg, "3.0") == 0)
				o.haproxy_version = 30;
			else if (strcmp(optarg, "3.2") == 0)
				o.haproxy_version = 32;
			else {
				fprintf(stderr, "spogate-gen: --haproxy-version: '%s' is not 2.6, 3.0 or 3.2\n",
					optarg);
				return 2;
			}
			break;
		case 'L':
		case 'T': {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v <= 0 || v > (c == 'L' ? 0x7fffffffL : 3600)) {
				fprintf(stderr, "spogate-gen: --%s: '%s' is not a %s\n",
					c == 'L' ? "reload" : "timeout", optarg,
					c == 'L' ? "process id" : "number of seconds (1-3600)");
				return 2;
			}
			if (c == 'L')
				ro.master_pid = v;
			else
				ro.timeout_ms = (int)v * 1000;
			break;
		}
		case 'S': ro.socket = optarg; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': version_print(stdout, "spogate-gen"); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "spogate-gen: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (ro.master_pid) {
		if (!o.run_dir || o.gateway_file || o.registry_file || outdir || check) {
			fprintf(stderr, "spogate-gen: --reload takes --run-dir (and optionally "
				"--socket, --timeout) only\n");
			return 2;
		}
		ro.run_dir = o.run_dir;
		if (gen_reload(&ro, quiet ? NULL : stderr, err, sizeof(err)) < 0) {
			fprintf(stderr, "spogate-gen: reload: %s\n", err);
			return 1;
		}
		return 0;
	}
	if (!o.gateway_file || !o.registry_file || (!outdir && !check) || (outdir && check)) {
		fprintf(stderr, "spogate-gen: %s\n",
			(outdir && check) ? "use either -o OUTDIR or --check, not both" :
			"-g, -r and one of -o or --check are required");
		usage(stderr);
		return 2;
	}
	if (o.consul_dns && !gen_valid_hostport(o.consul_dns)) {
		fprintf(stderr, "spogate-gen: --consul-dns: '%s' is not ip:port\n", o.consul_dns);
		return 2;
	}
	/* HAProxy creates its socket and reads its server state in the
	 * run directory but does not create it: a missing one passes
	 * "haproxy -c" and fails at start. */
	if (o.run_dir && !stat_dir(o.run_dir)) {
		fprintf(stderr, "spogate-gen: %s: --run-dir %s is not a directory; HAProxy "
			"would not start (create it, or choose another)\n",
			check ? "error" : "warning", o.run_dir);
		if (check)
			return 1;
	}
	if (outdir) {
		struct stat st;
		if (mkdir(outdir, 0755) < 0 && errno != EEXIST) {
			fprintf(stderr, "spogate-gen: %s: %s\n", outdir, strerror(errno));
			return 2;
		}
		if (stat(outdir, &st) < 0 || !S_ISDIR(st.st_mode) || !realpath(outdir, absout)) {
			fprintf(stderr, "spogate-gen: %s: not a directory\n", outdir);
			return 2;
		}
		if (!o.haproxy_dir)
			o.haproxy_dir = absout;
		/* The output directory exists: a default that works anywhere. */
		if (!o.run_dir)
			o.run_dir = absout;
	}

	gen_diags_init(&d);
	rc = gen_run(&o, check, &d, &out);
	if (quiet) {
		size_t i, k = 0;
		for (i = 0; i < d.n; i++) {
			if (d.v[i].sev == GEN_SEV_ERROR)
				d.v[k++] = d.v[i];
			else
				free(d.v[i].msg);
		}
		d.n = k;
	}
	gen_diags_print(&d, stderr);
	if (rc < 0) {
		fprintf(stderr, "spogate-gen: %zu error%s, %zu warning%s\n", d.errors,
			d.errors == 1 ? "" : "s", d.warnings, d.warnings == 1 ? "" : "s");
		gen_diags_free(&d);
		return 1;
	}
	gen_diags_free(&d);
	if (!check) {
		rc = gen_write_files(outdir, &out, err, sizeof(err));
		if (rc == 0 && stat_dir(o.run_dir))
			rc = gen_seed_server_state(o.run_dir, err, sizeof(err));
		gen_output_free(&out);
		if (rc < 0) {
			fprintf(stderr, "spogate-gen: %s\n", err);
			return 1;
		}
	}
	return 0;
}
