/*
 * The current key set (see jwt_keys.h).
 */
#include "jwt_keys.h"

#include <pthread.h>
#include <stdio.h>

static struct {
	const char *jwks_file;
	const struct jwt_pem_file *pems;
	size_t npems;
	pthread_mutex_t lock;
	struct jwt_keyset *keys;
	unsigned gen;                  /* bumped on every swap */
} K = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* Builds a keyset from the configured files. NULL with err set. */
static struct jwt_keyset *load_keys(char *err, size_t errlen)
{
	struct jwt_keyset *ks = jwt_keyset_new();
	size_t i;

	if (!ks) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (K.jwks_file && jwt_keyset_add_jwks_file(ks, K.jwks_file, err, errlen) < 0)
		goto fail;
	for (i = 0; i < K.npems; i++)
		if (jwt_keyset_add_pem_file(ks, K.pems[i].kid, K.pems[i].alg, K.pems[i].file,
		                            err, errlen) < 0)
			goto fail;
	if (jwt_keyset_size(ks) == 0) {
		snprintf(err, errlen, "auth.mode jwt: no usable key in %s%s",
		         K.jwks_file ? K.jwks_file : "", K.npems ? " and pem_keys" : "");
		goto fail;
	}
	return ks;
 fail:
	jwt_keyset_unref(ks);
	return NULL;
}

int jwt_keys_load(const char *jwks_file, const struct jwt_pem_file *pems, size_t npems,
                  char *err, size_t errlen)
{
	struct jwt_keyset *ks;

	K.jwks_file = jwks_file;
	K.pems = pems;
	K.npems = npems;
	if (!jwks_file && !npems) {
		/* Keys come from elsewhere (a JWKS fetch): none until then. */
		jwt_keys_set(NULL);
		return 0;
	}
	ks = load_keys(err, errlen);
	if (!ks)
		return -1;
	jwt_keys_set(ks);
	return 0;
}

int jwt_keys_reload(char *err, size_t errlen)
{
	struct jwt_keyset *ks;

	if (!K.jwks_file && !K.npems)
		return 0;
	ks = load_keys(err, errlen);
	if (!ks)
		return -1;
	jwt_keys_set(ks);
	return 0;
}

void jwt_keys_set(struct jwt_keyset *ks)
{
	struct jwt_keyset *old;

	pthread_mutex_lock(&K.lock);
	old = K.keys;
	K.keys = ks;
	__atomic_add_fetch(&K.gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&K.lock);
	jwt_keyset_unref(old);
}

size_t jwt_keys_size(void)
{
	size_t n;

	pthread_mutex_lock(&K.lock);
	n = K.keys ? jwt_keyset_size(K.keys) : 0;
	pthread_mutex_unlock(&K.lock);
	return n;
}

void jwt_keys_clear(void)
{
	pthread_mutex_lock(&K.lock);
	jwt_keyset_unref(K.keys);
	K.keys = NULL;
	pthread_mutex_unlock(&K.lock);
}

int jwt_keys_sync(struct jwt_keys_view *v)
{
	unsigned gen = __atomic_load_n(&K.gen, __ATOMIC_ACQUIRE);

	if (v->keys && gen == v->gen)
		return 0;
	pthread_mutex_lock(&K.lock);
	jwt_keyset_unref(v->keys);
	v->keys = K.keys;
	if (v->keys)
		jwt_keyset_ref(v->keys);
	v->gen = K.gen;
	pthread_mutex_unlock(&K.lock);
	return 1;
}

void jwt_keys_view_drop(struct jwt_keys_view *v)
{
	jwt_keyset_unref(v->keys);
	v->keys = NULL;
}
