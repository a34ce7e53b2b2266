/*
 * SPOP 2.0 codec. Everything here works on caller-owned bounded buffers:
 * decoders check the remaining length before every read, encoders before
 * every write. Nothing allocates and nothing does I/O, so the whole file is
 * unit-tested and fuzzed without a socket.
 */
#include "spop.h"

#include <string.h>

int spop_varint_encode(uint64_t v, uint8_t *out, size_t room)
{
	size_t n = 0;

	if (room == 0)
		return -1;
	if (v < 240) {
		out[0] = (uint8_t)v;
		return 1;
	}
	out[n++] = (uint8_t)v | 240;
	v = (v - 240) >> 4;
	while (v >= 128) {
		if (n >= room)
			return -1;
		out[n++] = (uint8_t)v | 128;
		v = (v - 128) >> 7;
	}
	if (n >= room)
		return -1;
	out[n++] = (uint8_t)v;
	return (int)n;
}

/* The first byte carries 4 value bits above 240, each following one 7 bits,
 * and every byte adds its full value shifted: 10 bytes reach 2^64-1. Longer
 * sequences or ones that overflow 64 bits are refused, not wrapped. */
int spop_varint_decode(const uint8_t *p, size_t len, uint64_t *v)
{
	uint64_t val, add;
	size_t n = 1;
	unsigned shift = 4;
	uint8_t b;

	if (len == 0)
		return -1;
	val = p[0];
	if (val < 240) {
		*v = val;
		return 1;
	}
	do {
		if (n >= len || n >= SPOP_VARINT_MAX)
			return -1;
		b = p[n++];
		if (shift > 56 && ((uint64_t)b >> (64 - shift)) != 0)
			return -1;
		add = (uint64_t)b << shift;
		if (val + add < val)
			return -1;
		val += add;
		shift += 7;
	} while (b >= 128);
	*v = val;
	return (int)n;
}

void spop_rd_init(struct spop_rd *rd, const uint8_t *p, size_t len)
{
	rd->p = p;
	rd->end = p + len;
}

int spop_rd_u8(struct spop_rd *rd, uint8_t *v)
{
	if (rd->p >= rd->end)
		return -1;
	*v = *rd->p++;
	return 0;
}

int spop_rd_varint(struct spop_rd *rd, uint64_t *v)
{
	int n = spop_varint_decode(rd->p, (size_t)(rd->end - rd->p), v);

	if (n < 0)
		return -1;
	rd->p += n;
	return 0;
}

int spop_rd_str(struct spop_rd *rd, struct spop_str *s)
{
	struct spop_rd save = *rd;
	uint64_t len;

	if (spop_rd_varint(rd, &len) < 0)
		return -1;
	if (len > (uint64_t)(rd->end - rd->p)) {
		*rd = save;
		return -1;
	}
	s->ptr = (const char *)rd->p;
	s->len = (size_t)len;
	rd->p += len;
	return 0;
}

int spop_rd_data(struct spop_rd *rd, struct spop_data *d)
{
	struct spop_rd save = *rd;
	uint8_t tb;
	uint64_t v;

	if (spop_rd_u8(rd, &tb) < 0)
		return -1;
	d->type = (enum spop_data_type)(tb & SPOP_DATA_TYPE_MASK);
	switch (d->type) {
	case SPOP_DATA_NULL:
		return 0;
	case SPOP_DATA_BOOL:
		d->u.boolean = (tb & SPOP_DATA_FL_TRUE) != 0;
		return 0;
	case SPOP_DATA_INT32:
	case SPOP_DATA_UINT32:
	case SPOP_DATA_INT64:
	case SPOP_DATA_UINT64:
		if (spop_rd_varint(rd, &v) < 0)
			goto bad;
		if (d->type == SPOP_DATA_INT32)
			d->u.sint32 = (int32_t)(uint32_t)v;
		else if (d->type == SPOP_DATA_UINT32) {
			if (v > UINT32_MAX)
				goto bad;
			d->u.uint32 = (uint32_t)v;
		} else if (d->type == SPOP_DATA_INT64)
			d->u.sint64 = (int64_t)v;
		else
			d->u.uint64 = v;
		return 0;
	case SPOP_DATA_IPV4:
		if (rd->end - rd->p < 4)
			goto bad;
		memcpy(d->u.ipv4, rd->p, 4);
		rd->p += 4;
		return 0;
	case SPOP_DATA_IPV6:
		if (rd->end - rd->p < 16)
			goto bad;
		memcpy(d->u.ipv6, rd->p, 16);
		rd->p += 16;
		return 0;
	case SPOP_DATA_STR:
	case SPOP_DATA_BIN:
		if (spop_rd_str(rd, &d->u.str) < 0)
			goto bad;
		return 0;
	}
 bad:
	*rd = save;
	return -1;
}

int spop_kv_next(struct spop_rd *rd, struct spop_str *name, struct spop_data *val)
{
	if (rd->p == rd->end)
		return 0;
	if (spop_rd_str(rd, name) < 0 || spop_rd_data(rd, val) < 0)
		return -1;
	return 1;
}

int spop_msg_next(struct spop_rd *rd, struct spop_str *name, unsigned *nargs)
{
	uint8_t n;

	if (rd->p == rd->end)
		return 0;
	if (spop_rd_str(rd, name) < 0 || spop_rd_u8(rd, &n) < 0)
		return -1;
	*nargs = n;
	return 1;
}

int spop_action_next(struct spop_rd *rd, uint8_t *action, uint8_t *scope,
                     struct spop_str *name, struct spop_data *val)
{
	uint8_t nargs;

	if (rd->p == rd->end)
		return 0;
	if (spop_rd_u8(rd, action) < 0 || spop_rd_u8(rd, &nargs) < 0)
		return -1;
	if (spop_rd_u8(rd, scope) < 0 || spop_rd_str(rd, name) < 0)
		return -1;
	if (*action == SPOP_ACT_SET_VAR && nargs == 3)
		return spop_rd_data(rd, val) < 0 ? -1 : 1;
	if (*action == SPOP_ACT_UNSET_VAR && nargs == 2) {
		val->type = SPOP_DATA_NULL;
		return 1;
	}
	return -1;
}

uint32_t spop_frame_len(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

int spop_frame_decode(const uint8_t *buf, size_t len, struct spop_frame *f)
{
	struct spop_rd rd;

	if (len < 1 + 4 + 1 + 1)
		return SPOP_ST_INVALID;
	f->type = buf[0];
	f->flags = spop_frame_len(buf + 1);
	spop_rd_init(&rd, buf + 5, len - 5);
	if (spop_rd_varint(&rd, &f->stream_id) < 0 ||
	    spop_rd_varint(&rd, &f->frame_id) < 0)
		return SPOP_ST_INVALID;
	f->payload = rd.p;
	f->payload_len = (size_t)(rd.end - rd.p);
	return 0;
}

static int str_is(struct spop_str s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && memcmp(s.ptr, lit, n) == 0;
}

int spop_hello_decode(const uint8_t *payload, size_t len, struct spop_hello *h)
{
	struct spop_rd rd;
	struct spop_str name;
	struct spop_data val;
	int r;

	memset(h, 0, sizeof(*h));
	spop_rd_init(&rd, payload, len);
	while ((r = spop_kv_next(&rd, &name, &val)) == 1) {
		if (str_is(name, "supported-versions") && val.type == SPOP_DATA_STR) {
			h->versions = val.u.str;
			h->has_versions = 1;
		} else if (str_is(name, "max-frame-size")) {
			/* HAProxy sends UINT32; accept any integer that fits. */
			uint64_t v;

			if (val.type == SPOP_DATA_UINT32)
				v = val.u.uint32;
			else if (val.type == SPOP_DATA_UINT64)
				v = val.u.uint64;
			else if (val.type == SPOP_DATA_INT32 && val.u.sint32 >= 0)
				v = (uint64_t)val.u.sint32;
			else if (val.type == SPOP_DATA_INT64 && val.u.sint64 >= 0)
				v = (uint64_t)val.u.sint64;
			else
				continue;
			h->max_frame_size = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
			h->has_max_frame_size = 1;
		} else if (str_is(name, "capabilities") && val.type == SPOP_DATA_STR) {
			h->capabilities = val.u.str;
			h->has_capabilities = 1;
		} else if (str_is(name, "healthcheck") && val.type == SPOP_DATA_BOOL) {
			h->healthcheck = val.u.boolean != 0;
		} else if (str_is(name, "engine-id") && val.type == SPOP_DATA_STR) {
			h->engine_id = val.u.str;
		}
	}
	return r < 0 ? SPOP_ST_INVALID : 0;
}

int spop_disconnect_decode(const uint8_t *payload, size_t len, struct spop_disconnect *d)
{
	struct spop_rd rd;
	struct spop_str name;
	struct spop_data val;
	int r;

	memset(d, 0, sizeof(*d));
	spop_rd_init(&rd, payload, len);
	while ((r = spop_kv_next(&rd, &name, &val)) == 1) {
		if (str_is(name, "status-code") && val.type == SPOP_DATA_UINT32)
			d->status = val.u.uint32;
		else if (str_is(name, "message") && val.type == SPOP_DATA_STR)
			d->message = val.u.str;
	}
	return r < 0 ? SPOP_ST_INVALID : 0;
}

int spop_list_has(struct spop_str list, const char *item)
{
	size_t n = strlen(item), i = 0;

	while (i < list.len) {
		size_t b, e;

		while (i < list.len && (list.ptr[i] == ' ' || list.ptr[i] == '\t'))
			i++;
		b = i;
		while (i < list.len && list.ptr[i] != ',')
			i++;
		e = i;
		while (e > b && (list.ptr[e - 1] == ' ' || list.ptr[e - 1] == '\t'))
			e--;
		if (e - b == n && memcmp(list.ptr + b, item, n) == 0)
			return 1;
		i++;
	}
	return 0;
}

const char *spop_caps_answer(struct spop_str offered)
{
	static const char *const answer[4] = { "", "pipelining", "async", "pipelining,async" };

	return answer[spop_list_has(offered, "pipelining") | spop_list_has(offered, "async") << 1];
}

void spop_wr_init(struct spop_wr *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->frame_start = 0;
	w->err = 0;
}

static void wr_bytes(struct spop_wr *w, const void *p, size_t n)
{
	if (w->err || n > w->cap - w->len) {
		w->err = 1;
		return;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void spop_wr_u8(struct spop_wr *w, uint8_t v)
{
	wr_bytes(w, &v, 1);
}

static void wr_be32(struct spop_wr *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	wr_bytes(w, b, 4);
}

void spop_wr_varint(struct spop_wr *w, uint64_t v)
{
	uint8_t tmp[SPOP_VARINT_MAX];
	int n = spop_varint_encode(v, tmp, sizeof(tmp));

	wr_bytes(w, tmp, (size_t)n);
}

void spop_wr_str(struct spop_wr *w, const char *s, size_t len)
{
	spop_wr_varint(w, len);
	wr_bytes(w, s, len);
}

void spop_wr_data(struct spop_wr *w, const struct spop_data *d)
{
	switch (d->type) {
	case SPOP_DATA_NULL:
		spop_wr_u8(w, SPOP_DATA_NULL);
		break;
	case SPOP_DATA_BOOL:
		spop_wr_u8(w, SPOP_DATA_BOOL | (d->u.boolean ? SPOP_DATA_FL_TRUE : 0));
		break;
	case SPOP_DATA_INT32:
		spop_wr_u8(w, SPOP_DATA_INT32);
		spop_wr_varint(w, (uint64_t)(uint32_t)d->u.sint32);
		break;
	case SPOP_DATA_UINT32:
		spop_wr_u8(w, SPOP_DATA_UINT32);
		spop_wr_varint(w, d->u.uint32);
		break;
	case SPOP_DATA_INT64:
		spop_wr_u8(w, SPOP_DATA_INT64);
		spop_wr_varint(w, (uint64_t)d->u.sint64);
		break;
	case SPOP_DATA_UINT64:
		spop_wr_u8(w, SPOP_DATA_UINT64);
		spop_wr_varint(w, d->u.uint64);
		break;
	case SPOP_DATA_IPV4:
		spop_wr_u8(w, SPOP_DATA_IPV4);
		wr_bytes(w, d->u.ipv4, 4);
		break;
	case SPOP_DATA_IPV6:
		spop_wr_u8(w, SPOP_DATA_IPV6);
		wr_bytes(w, d->u.ipv6, 16);
		break;
	case SPOP_DATA_STR:
	case SPOP_DATA_BIN:
		spop_wr_u8(w, (uint8_t)d->type);
		spop_wr_str(w, d->u.str.ptr, d->u.str.len);
		break;
	default:
		w->err = 1;
	}
}

void spop_wr_kv(struct spop_wr *w, const char *name, const struct spop_data *d)
{
	spop_wr_str(w, name, strlen(name));
	spop_wr_data(w, d);
}

void spop_wr_set_var(struct spop_wr *w, uint8_t scope, const char *name,
                     const struct spop_data *d)
{
	spop_wr_u8(w, SPOP_ACT_SET_VAR);
	spop_wr_u8(w, 3);
	spop_wr_u8(w, scope);
	spop_wr_str(w, name, strlen(name));
	spop_wr_data(w, d);
}

void spop_wr_unset_var(struct spop_wr *w, uint8_t scope, const char *name)
{
	spop_wr_u8(w, SPOP_ACT_UNSET_VAR);
	spop_wr_u8(w, 2);
	spop_wr_u8(w, scope);
	spop_wr_str(w, name, strlen(name));
}

void spop_wr_frame_begin(struct spop_wr *w, uint8_t type, uint32_t flags,
                         uint64_t stream_id, uint64_t frame_id)
{
	w->frame_start = w->len;
	wr_be32(w, 0);          /* length, filled in by spop_wr_frame_end() */
	spop_wr_u8(w, type);
	wr_be32(w, flags);
	spop_wr_varint(w, stream_id);
	spop_wr_varint(w, frame_id);
}

long spop_wr_frame_end(struct spop_wr *w)
{
	size_t flen;
	uint8_t *p;

	if (w->err)
		return -1;
	flen = w->len - w->frame_start - SPOP_LEN_BYTES;
	if (flen > UINT32_MAX)
		return -1;
	p = w->buf + w->frame_start;
	p[0] = (uint8_t)(flen >> 24);
	p[1] = (uint8_t)(flen >> 16);
	p[2] = (uint8_t)(flen >> 8);
	p[3] = (uint8_t)flen;
	return (long)(w->len - w->frame_start);
}

long spop_agent_hello(uint8_t *buf, size_t cap, uint32_t max_frame_size,
                      const char *capabilities)
{
	struct spop_wr w;
	struct spop_data d;

	spop_wr_init(&w, buf, cap);
	spop_wr_frame_begin(&w, SPOP_FRM_AGENT_HELLO, SPOP_FLAG_FIN, 0, 0);
	d = spop_cstr(SPOP_VERSION);
	spop_wr_kv(&w, "version", &d);
	d = spop_uint32(max_frame_size);
	spop_wr_kv(&w, "max-frame-size", &d);
	d = spop_cstr(capabilities);
	spop_wr_kv(&w, "capabilities", &d);
	return spop_wr_frame_end(&w);
}

long spop_agent_disconnect(uint8_t *buf, size_t cap, uint32_t status,
                           const char *message)
{
	struct spop_wr w;
	struct spop_data d;

	spop_wr_init(&w, buf, cap);
	spop_wr_frame_begin(&w, SPOP_FRM_AGENT_DISCONNECT, SPOP_FLAG_FIN, 0, 0);
	d = spop_uint32(status);
	spop_wr_kv(&w, "status-code", &d);
	d = spop_cstr(message);
	spop_wr_kv(&w, "message", &d);
	return spop_wr_frame_end(&w);
}

long spop_haproxy_hello(uint8_t *buf, size_t cap, uint32_t flags, const char *versions,
                        long max_frame_size, const char *capabilities, int healthcheck,
                        const char *engine_id)
{
	struct spop_wr w;
	struct spop_data d;

	spop_wr_init(&w, buf, cap);
	spop_wr_frame_begin(&w, SPOP_FRM_HAPROXY_HELLO, flags, 0, 0);
	if (versions) {
		d = spop_cstr(versions);
		spop_wr_kv(&w, "supported-versions", &d);
	}
	if (max_frame_size >= 0) {
		d = spop_uint32((uint32_t)max_frame_size);
		spop_wr_kv(&w, "max-frame-size", &d);
	}
	if (capabilities) {
		d = spop_cstr(capabilities);
		spop_wr_kv(&w, "capabilities", &d);
	}
	if (healthcheck) {
		d = spop_bool(1);
		spop_wr_kv(&w, "healthcheck", &d);
	}
	if (engine_id) {
		d = spop_cstr(engine_id);
		spop_wr_kv(&w, "engine-id", &d);
	}
	return spop_wr_frame_end(&w);
}

struct spop_data spop_null(void)
{
	struct spop_data d = { .type = SPOP_DATA_NULL };
	return d;
}

struct spop_data spop_bool(int v)
{
	struct spop_data d = { .type = SPOP_DATA_BOOL, .u.boolean = v != 0 };
	return d;
}

struct spop_data spop_int32(int32_t v)
{
	struct spop_data d = { .type = SPOP_DATA_INT32, .u.sint32 = v };
	return d;
}

struct spop_data spop_uint32(uint32_t v)
{
	struct spop_data d = { .type = SPOP_DATA_UINT32, .u.uint32 = v };
	return d;
}

struct spop_data spop_int64(int64_t v)
{
	struct spop_data d = { .type = SPOP_DATA_INT64, .u.sint64 = v };
	return d;
}

struct spop_data spop_uint64(uint64_t v)
{
	struct spop_data d = { .type = SPOP_DATA_UINT64, .u.uint64 = v };
	return d;
}

struct spop_data spop_strn(const char *s, size_t len)
{
	struct spop_data d = { .type = SPOP_DATA_STR };

	d.u.str.ptr = s;
	d.u.str.len = len;
	return d;
}

struct spop_data spop_cstr(const char *s)
{
	return spop_strn(s, strlen(s));
}

const char *spop_status_str(uint32_t status)
{
	switch (status) {
	case SPOP_ST_NORMAL:         return "normal";
	case SPOP_ST_IO:             return "I/O error";
	case SPOP_ST_TIMEOUT:        return "a timeout occurred";
	case SPOP_ST_TOO_BIG:        return "frame is too big";
	case SPOP_ST_INVALID:        return "invalid frame received";
	case SPOP_ST_NO_VSN:         return "version value not found";
	case SPOP_ST_NO_FRAME_SIZE:  return "max-frame-size value not found";
	case SPOP_ST_NO_CAP:         return "capabilities value not found";
	case SPOP_ST_BAD_VSN:        return "unsupported version";
	case SPOP_ST_BAD_FRAME_SIZE: return "max-frame-size too big or too small";
	case SPOP_ST_FRAG_NOT_SUPP:  return "payload fragmentation is not supported";
	case SPOP_ST_INTERLACED:     return "invalid interlaced frames";
	case SPOP_ST_FRAMEID_NOTFND: return "frame-id not found";
	case SPOP_ST_RES:            return "resource allocation error";
	default:                     return "an unknown error occurred";
	}
}
