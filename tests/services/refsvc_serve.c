/*
 * spogate-refsvc serve: AuthService and AuthzService on the grpc core
 * server API, one thread on one completion queue, and a tiny HTTP admin
 * port on a second thread for the call counters.
 *
 * Each call walks: requested -> message received -> (optional delay) ->
 * answered -> closed. A new call is requested as soon as one arrives, so
 * many calls can be in flight (the delay list holds the slow ones).
 */
#include "refsvc.h"

#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <jansson.h>

#include "addr.h"
#include "auth.pb-c.h"
#include "authz.pb-c.h"
#include "jwt_verify.h"

#define MAX_AUDS 8

enum call_state {
	ST_REQUESTED = 1,
	ST_RECEIVED  = 2,
	ST_ANSWERED  = 3,
};

struct scall {
	enum call_state state;
	grpc_call *call;
	grpc_call_details details;
	grpc_metadata_array md;
	grpc_byte_buffer *req;
	grpc_byte_buffer *resp;
	int cancelled;
	double due;                    /* answer time when delayed */
	struct scall *next;            /* delayed list */
	uint8_t *out;
	size_t outlen;
	grpc_status_code status;
};

static grpc_server *server;
static grpc_completion_queue *cq;
static struct jwt_keyset *keys;
static struct jwt_policy pol;
static const char *auds[MAX_AUDS];
static json_t *policy;
static struct scall *delayed;
static volatile sig_atomic_t stopping;
static int delay_ms;                   /* read by the grpc thread, set by admin */
static uint64_t n_validate, n_check;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void request_next(void)
{
	struct scall *c = calloc(1, sizeof(*c));

	c->state = ST_REQUESTED;
	grpc_call_details_init(&c->details);
	grpc_metadata_array_init(&c->md);
	if (grpc_server_request_call(server, &c->call, &c->details, &c->md, cq, cq, c) !=
	    GRPC_CALL_OK) {
		fprintf(stderr, "refsvc: grpc_server_request_call failed\n");
		exit(1);
	}
}

static void scall_free(struct scall *c)
{
	grpc_call_details_destroy(&c->details);
	grpc_metadata_array_destroy(&c->md);
	if (c->req)
		grpc_byte_buffer_destroy(c->req);
	if (c->resp)
		grpc_byte_buffer_destroy(c->resp);
	if (c->call)
		grpc_call_unref(c->call);
	free(c->out);
	free(c);
}

static const char *reason_of(enum jwt_status st)
{
	switch (st) {
	case JWT_E_EXPIRED:       return "token_expired";
	case JWT_E_NOT_YET_VALID: return "token_not_yet_valid";
	case JWT_E_ISSUER:        return "issuer_mismatch";
	case JWT_E_AUDIENCE:      return "audience_mismatch";
	default:                  return "token_invalid";
	}
}

static char **str_list(json_t *v, size_t *n)
{
	char **out;
	json_t *e;
	size_t i;

	*n = 0;
	if (json_is_string(v)) {
		out = calloc(1, sizeof(*out));
		out[0] = strdup(json_string_value(v));
		*n = 1;
		return out;
	}
	if (!json_is_array(v))
		return NULL;
	out = calloc(json_array_size(v) + 1, sizeof(*out));
	json_array_foreach(v, i, e)
		if (json_is_string(e))
			out[(*n)++] = strdup(json_string_value(e));
	return out;
}

static void free_list(char **l, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

static void do_validate(struct scall *c, const uint8_t *in, size_t len)
{
	Spogate__Auth__V1__ValidateTokenRequest *req;
	Spogate__Auth__V1__ValidateTokenResponse resp = SPOGATE__AUTH__V1__VALIDATE_TOKEN_RESPONSE__INIT;
	Spogate__Auth__V1__ValidateTokenResponse__ClaimsEntry *entries[32], ebuf[32];
	json_t *claims = NULL, *v;
	const char *k;
	enum jwt_status st;
	size_t n = 0, i;

	__atomic_fetch_add(&n_validate, 1, __ATOMIC_RELAXED);
	req = spogate__auth__v1__validate_token_request__unpack(NULL, len, in);
	if (!req) {
		c->status = GRPC_STATUS_INVALID_ARGUMENT;
		return;
	}
	st = jwt_verify_token(keys, &pol, req->token, strlen(req->token), (int64_t)time(NULL),
	                      &claims);
	if (st != JWT_OK) {
		resp.valid = 0;
		resp.reason = (char *)reason_of(st);
	} else {
		resp.valid = 1;
		resp.user_id = (char *)(json_string_value(json_object_get(claims, "sub")) ?
		                        json_string_value(json_object_get(claims, "sub")) : "");
		if (json_string_value(json_object_get(claims, "email")))
			resp.email = (char *)json_string_value(json_object_get(claims, "email"));
		resp.roles = str_list(json_object_get(claims, "roles"), &resp.n_roles);
		resp.permissions = str_list(json_object_get(claims, "permissions"),
		                            &resp.n_permissions);
		v = json_object_get(claims, "exp");
		resp.expires_at = json_is_integer(v) ? json_integer_value(v) : 0;
		json_object_foreach(claims, k, v) {
			if (!json_is_string(v) || n >= 32)
				continue;
			spogate__auth__v1__validate_token_response__claims_entry__init(&ebuf[n]);
			ebuf[n].key = (char *)k;
			ebuf[n].value = (char *)json_string_value(v);
			entries[n] = &ebuf[n];
			n++;
		}
		resp.claims = entries;
		resp.n_claims = n;
	}
	c->outlen = spogate__auth__v1__validate_token_response__get_packed_size(&resp);
	c->out = malloc(c->outlen + 1);
	spogate__auth__v1__validate_token_response__pack(&resp, c->out);
	c->status = GRPC_STATUS_OK;
	if (resp.roles)
		free_list(resp.roles, resp.n_roles);
	if (resp.permissions)
		free_list(resp.permissions, resp.n_permissions);
	json_decref(claims);
	spogate__auth__v1__validate_token_request__free_unpacked(req, NULL);
	(void)i;
}

/* "*" grants everything, "blog.*" everything under "blog.", else exact. */
static int perm_matches(const char *grant, const char *perm)
{
	size_t n = strlen(grant);

	if (strcmp(grant, "*") == 0)
		return 1;
	if (n >= 2 && grant[n - 1] == '*' && grant[n - 2] == '.')
		return strncmp(grant, perm, n - 1) == 0;
	return strcmp(grant, perm) == 0;
}

static int role_allows(const char *role, const char *perm)
{
	json_t *grants = json_object_get(json_object_get(policy, "roles"), role), *g;
	size_t i;

	json_array_foreach(grants, i, g)
		if (json_is_string(g) && perm_matches(json_string_value(g), perm))
			return 1;
	return 0;
}

static void do_check(struct scall *c, const uint8_t *in, size_t len)
{
	Spogate__Authz__V1__CheckPermissionRequest *req;
	Spogate__Authz__V1__CheckPermissionResponse resp =
		SPOGATE__AUTHZ__V1__CHECK_PERMISSION_RESPONSE__INIT;
	json_t *roles, *r;
	size_t i;
	int allowed = 0;

	__atomic_fetch_add(&n_check, 1, __ATOMIC_RELAXED);
	req = spogate__authz__v1__check_permission_request__unpack(NULL, len, in);
	if (!req) {
		c->status = GRPC_STATUS_INVALID_ARGUMENT;
		return;
	}
	/* Roles from the policy file for this user, and those of the token. */
	roles = json_object_get(json_object_get(policy, "users"), req->user_id);
	json_array_foreach(roles, i, r)
		if (json_is_string(r) && role_allows(json_string_value(r), req->permission))
			allowed = 1;
	for (i = 0; i < req->n_roles && !allowed; i++)
		allowed = role_allows(req->roles[i], req->permission);
	resp.allowed = allowed;
	resp.reason = (char *)(allowed ? "" : "permission_denied");
	resp.cache_ttl_seconds = (int32_t)json_integer_value(json_object_get(policy,
	                                                                     "cache_ttl_seconds"));
	c->outlen = spogate__authz__v1__check_permission_response__get_packed_size(&resp);
	c->out = malloc(c->outlen + 1);
	spogate__authz__v1__check_permission_response__pack(&resp, c->out);
	c->status = GRPC_STATUS_OK;
	spogate__authz__v1__check_permission_request__free_unpacked(req, NULL);
}

static void answer(struct scall *c)
{
	grpc_op ops[4];
	grpc_slice s;

	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
	ops[1].data.send_status_from_server.status = c->status;
	ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
	ops[2].data.recv_close_on_server.cancelled = &c->cancelled;
	if (c->status == GRPC_STATUS_OK) {
		s = grpc_slice_from_copied_buffer((const char *)c->out, c->outlen);
		c->resp = grpc_raw_byte_buffer_create(&s, 1);
		grpc_slice_unref(s);
		ops[3].op = GRPC_OP_SEND_MESSAGE;
		ops[3].data.send_message.send_message = c->resp;
	}
	c->state = ST_ANSWERED;
	if (grpc_call_start_batch(c->call, ops, c->status == GRPC_STATUS_OK ? 4 : 3, c, NULL) !=
	    GRPC_CALL_OK) {
		fprintf(stderr, "refsvc: answer batch failed\n");
		scall_free(c);
	}
}

/* One line per call with the trace metadata it carried, for the tests
 * that follow a request id from the gateway to here. */
static void log_trace_metadata(const char *method, const grpc_metadata_array *md)
{
	char line[1024];
	size_t i, used;

	used = (size_t)snprintf(line, sizeof(line), "spogate-refsvc: call %s", method);
	for (i = 0; i < md->count && used < sizeof(line); i++) {
		const grpc_slice *k = &md->metadata[i].key, *v = &md->metadata[i].value;
		if (!grpc_slice_str_cmp(*k, "x-request-id") || !grpc_slice_str_cmp(*k, "traceparent") ||
		    !grpc_slice_str_cmp(*k, "tracestate"))
			used += (size_t)snprintf(line + used, sizeof(line) - used, " %.*s=%.*s",
			                         (int)GRPC_SLICE_LENGTH(*k), GRPC_SLICE_START_PTR(*k),
			                         (int)GRPC_SLICE_LENGTH(*v), GRPC_SLICE_START_PTR(*v));
	}
	printf("%s\n", line);
	fflush(stdout);
}

/* Reads a PEM file whole; NULL when unreadable. */
static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || n > (1 << 20) ||
	    fseek(f, 0, SEEK_SET) < 0 || !(buf = malloc((size_t)n + 1))) {
		fclose(f);
		return NULL;
	}
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* TLS server credentials; with client_ca, clients must present a
 * certificate it signed. */
static grpc_server_credentials *tls_server_creds(const char *cert, const char *key,
                                                 const char *client_ca)
{
	grpc_ssl_pem_key_cert_pair kp;
	grpc_server_credentials *creds = NULL;
	char *c = slurp(cert), *k = slurp(key), *ca = client_ca ? slurp(client_ca) : NULL;

	if (c && k && (!client_ca || ca)) {
		kp.private_key = k;
		kp.cert_chain = c;
		creds = grpc_ssl_server_credentials_create_ex(
			ca, &kp, 1, ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
			               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
	}
	free(c);
	free(k);
	free(ca);
	return creds;
}

static void on_event(struct scall *c, int success)
{
	grpc_op op;
	grpc_byte_buffer_reader rd;
	grpc_slice s;
	char *method;

	switch (c->state) {
	case ST_REQUESTED:
		request_next();
		if (!success) {
			scall_free(c);
			return;
		}
		memset(&op, 0, sizeof(op));
		op.op = GRPC_OP_RECV_MESSAGE;
		op.data.recv_message.recv_message = &c->req;
		c->state = ST_RECEIVED;
		if (grpc_call_start_batch(c->call, &op, 1, c, NULL) != GRPC_CALL_OK)
			scall_free(c);
		return;
	case ST_RECEIVED:
		if (!success || !c->req) {
			scall_free(c);
			return;
		}
		method = grpc_slice_to_c_string(c->details.method);
		log_trace_metadata(method, &c->md);
		grpc_byte_buffer_reader_init(&rd, c->req);
		s = grpc_byte_buffer_reader_readall(&rd);
		grpc_byte_buffer_reader_destroy(&rd);
		if (strcmp(method, "/spogate.auth.v1.AuthService/ValidateToken") == 0)
			do_validate(c, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
		else if (strcmp(method, "/spogate.authz.v1.AuthzService/CheckPermission") == 0)
			do_check(c, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
		else
			c->status = GRPC_STATUS_UNIMPLEMENTED;
		grpc_slice_unref(s);
		gpr_free(method);
		if (__atomic_load_n(&delay_ms, __ATOMIC_RELAXED) > 0) {
			c->due = now_s() + __atomic_load_n(&delay_ms, __ATOMIC_RELAXED) / 1000.0;
			c->next = delayed;
			delayed = c;
			return;
		}
		answer(c);
		return;
	case ST_ANSWERED:
		scall_free(c);
		return;
	}
}

static void run_delayed(void)
{
	struct scall **pp = &delayed, *c;
	double now = now_s();

	while ((c = *pp)) {
		if (c->due <= now) {
			*pp = c->next;
			answer(c);
		} else {
			pp = &c->next;
		}
	}
}

/* ---- admin HTTP ---- */

static void *admin_main(void *arg)
{
	int lfd = *(int *)arg;
	char req[2048], resp[512], body[256];

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		ssize_t n;
		long ms;
		char *q, *end;

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		n = recv(fd, req, sizeof(req) - 1, 0);
		req[n > 0 ? n : 0] = '\0';
		if (strncmp(req, "GET /reset", 10) == 0 || strncmp(req, "POST /reset", 11) == 0) {
			__atomic_store_n(&n_validate, 0, __ATOMIC_RELAXED);
			__atomic_store_n(&n_check, 0, __ATOMIC_RELAXED);
		} else if (strncmp(req, "GET /delay?ms=", 14) == 0) {
			q = req + 14;
			errno = 0;
			ms = strtol(q, &end, 10);
			if (!errno && end != q && ms >= 0 && ms <= 60000)
				__atomic_store_n(&delay_ms, (int)ms, __ATOMIC_RELAXED);
		}
		snprintf(body, sizeof(body), "{\"validate\":%lu,\"check\":%lu,\"delay_ms\":%d}\n",
		         (unsigned long)__atomic_load_n(&n_validate, __ATOMIC_RELAXED),
		         (unsigned long)__atomic_load_n(&n_check, __ATOMIC_RELAXED),
		         __atomic_load_n(&delay_ms, __ATOMIC_RELAXED));
		n = snprintf(resp, sizeof(resp),
		             "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		             "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
		             strlen(body), body);
		if (send(fd, resp, (size_t)n, MSG_NOSIGNAL) < 0)
			perror("refsvc admin: send");
		close(fd);
	}
}

static int admin_listen(const char *addr)
{
	char host[256];
	int port, fd, one = 1;
	struct sockaddr_in sa;

	if (addr_split(addr, host, sizeof(host), &port) < 0)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return -1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

int refsvc_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "admin", required_argument, NULL, 'A' },
		{ "jwks", required_argument, NULL, 'j' },
		{ "key", required_argument, NULL, 'k' },
		{ "kid", required_argument, NULL, 'K' },
		{ "alg", required_argument, NULL, 'a' },
		{ "issuer", required_argument, NULL, 'i' },
		{ "audience", required_argument, NULL, 'u' },
		{ "policy", required_argument, NULL, 'p' },
		{ "delay-ms", required_argument, NULL, 'd' },
		{ "tls-cert", required_argument, NULL, 'C' },
		{ "tls-key", required_argument, NULL, 'Y' },
		{ "client-ca", required_argument, NULL, 'Q' },
		{ NULL, 0, NULL, 0 }
	};
	const char *listen = NULL, *admin = NULL, *kid = NULL, *alg = NULL;
	const char *tls_cert = NULL, *tls_key = NULL, *client_ca = NULL;
	static int admin_fd;
	json_error_t jerr;
	char err[512];
	pthread_t admin_thread;
	grpc_server_credentials *creds;
	int opt;
	long long d;

	keys = jwt_keyset_new();
	pol.algs = JWT_ALL_ALGS;
	pol.leeway = 30;
	pol.max_len = 65536;
	pol.audiences = auds;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'l': listen = optarg; break;
		case 'A': admin = optarg; break;
		case 'j':
			if (jwt_keyset_add_jwks_file(keys, optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "refsvc: %s\n", err);
				return 1;
			}
			break;
		case 'K': kid = optarg; break;
		case 'a': alg = optarg; break;
		case 'k':
			if (jwt_keyset_add_pem_file(keys, kid, alg, optarg, err, sizeof(err)) < 0) {
				fprintf(stderr, "refsvc: %s\n", err);
				return 1;
			}
			kid = alg = NULL;
			break;
		case 'i': pol.issuer = optarg; break;
		case 'u':
			if (pol.naud < MAX_AUDS)
				auds[pol.naud++] = optarg;
			break;
		case 'p':
			policy = json_load_file(optarg, 0, &jerr);
			if (!policy) {
				fprintf(stderr, "refsvc: %s:%d: %s\n", optarg, jerr.line, jerr.text);
				return 1;
			}
			break;
		case 'd':
			if (refsvc_parse_duration(optarg, &d) < 0) {
				fprintf(stderr, "refsvc: --delay-ms: bad number\n");
				return 2;
			}
			delay_ms = (int)d;
			break;
		case 'C': tls_cert = optarg; break;
		case 'Y': tls_key = optarg; break;
		case 'Q': client_ca = optarg; break;
		default:
			return 2;
		}
	}
	if (!listen) {
		fprintf(stderr, "refsvc: --listen is required\n");
		return 2;
	}
	if (!policy)
		policy = json_object();
	if (admin) {
		admin_fd = admin_listen(admin);
		if (admin_fd < 0) {
			fprintf(stderr, "refsvc: cannot listen on %s\n", admin);
			return 1;
		}
		pthread_create(&admin_thread, NULL, admin_main, &admin_fd);
		pthread_detach(admin_thread);
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	grpc_init();
	cq = grpc_completion_queue_create_for_next(NULL);
	server = grpc_server_create(NULL, NULL);
	grpc_server_register_completion_queue(server, cq, NULL);
	creds = tls_cert ? tls_server_creds(tls_cert, tls_key ? tls_key : tls_cert, client_ca)
	                 : grpc_insecure_server_credentials_create();
	if (!creds) {
		fprintf(stderr, "refsvc: cannot load the TLS certificate\n");
		return 1;
	}
	if (!grpc_server_add_http2_port(server, listen, creds)) {
		fprintf(stderr, "refsvc: cannot listen on %s\n", listen);
		return 1;
	}
	grpc_server_credentials_release(creds);
	grpc_server_start(server);
	request_next();
	printf("spogate-refsvc: serving on %s (admin %s), %zu keys\n", listen,
	       admin ? admin : "none", jwt_keyset_size(keys));
	fflush(stdout);
	while (!stopping) {
		grpc_event ev = grpc_completion_queue_next(
			cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			                 gpr_time_from_millis(delayed ? 2 : 100, GPR_TIMESPAN)),
			NULL);

		if (ev.type == GRPC_OP_COMPLETE)
			on_event(ev.tag, ev.success);
		run_delayed();
	}
	/* Exit without a graceful gRPC shutdown: tests stop us to simulate an
	 * outage, and a dead service does not say goodbye either. */
	printf("spogate-refsvc: stopping\n");
	fflush(stdout);
	_exit(0);
}
