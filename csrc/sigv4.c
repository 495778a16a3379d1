/* AWS Signature Version 4: canonical request, string to sign, signing key, signature. */
#include "sigv4.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

/* OpenSSL 3's one-shot SHA256() and HMAC() look the algorithm up by name on every call,
 * which cost more than hashing a small request. A context that already holds SHA-256 is
 * initialised again with a NULL type and keeps it: one lookup per context, none per hash,
 * and no process-wide object to outlive the module. */
static const EVP_MD *md_for(const EVP_MD_CTX *ctx)
{
    return EVP_MD_CTX_get0_md(ctx) != NULL ? NULL : EVP_sha256();
}

static void to_hex(const unsigned char *md, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    size_t i;
    for (i = 0; i < n; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[2 * n] = '\0';
}

/* One SHA-256 on ctx (reused by the caller) or, without one, on a context of its own. */
static int sha256(EVP_MD_CTX *ctx, const void *data, size_t len,
                  unsigned char md[SHA256_DIGEST_LENGTH])
{
    EVP_MD_CTX *own = NULL;
    int ok;
    if (ctx == NULL && (ctx = own = EVP_MD_CTX_new()) == NULL)
        return -1;
    ok = EVP_DigestInit_ex(ctx, md_for(ctx), NULL) && EVP_DigestUpdate(ctx, data, len) &&
         EVP_DigestFinal_ex(ctx, md, NULL);
    EVP_MD_CTX_free(own);
    return ok ? 0 : -1;
}

/* The hashing functions take an EVP_MD_CTX to reuse, or NULL for one of their own. */
static int sigv4_sha256_hex(EVP_MD_CTX *ctx, const void *data, size_t len,
                     char out[SIGV4_HEX_LEN + 1])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    if (sha256(ctx, data, len, md) != 0)
        return -1;
    to_hex(md, sizeof md, out);
    return 0;
}

static void hmac256(const unsigned char *key, size_t key_len, const void *msg, size_t msg_len,
                    unsigned char out[SIGV4_KEY_LEN])
{
    unsigned int n = SIGV4_KEY_LEN;
    HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, msg_len, out, &n);
}

/* HMAC-SHA256 with a key that signs many messages: the hash states after the key's inner
 * and outer pad blocks are kept, so one MAC costs two state copies and the message. */
void ddb_sigv4_hmac_init(sigv4_hmac *m)
{
    m->inner = m->outer = m->work = NULL;
    m->keyed = 0;
}

void ddb_sigv4_hmac_free(sigv4_hmac *m)
{
    /* EVP_MD_CTX_free cleanses the hash state, which is derived from the key */
    EVP_MD_CTX_free(m->inner);
    EVP_MD_CTX_free(m->outer);
    EVP_MD_CTX_free(m->work);
    OPENSSL_cleanse(m->key, sizeof m->key);
    ddb_sigv4_hmac_init(m);
}

static int sigv4_hmac_set_key(sigv4_hmac *m, const unsigned char key[SIGV4_KEY_LEN])
{
    unsigned char pad[64];
    int i, ok;
    if (m->keyed && CRYPTO_memcmp(m->key, key, SIGV4_KEY_LEN) == 0)
        return 0;
    m->keyed = 0;
    if ((m->inner == NULL && (m->inner = EVP_MD_CTX_new()) == NULL) ||
        (m->outer == NULL && (m->outer = EVP_MD_CTX_new()) == NULL) ||
        (m->work == NULL && (m->work = EVP_MD_CTX_new()) == NULL))
        return -1;
    for (i = 0; i < 64; i++)
        pad[i] = (unsigned char)((i < SIGV4_KEY_LEN ? key[i] : 0) ^ 0x36);
    ok = EVP_DigestInit_ex(m->inner, md_for(m->inner), NULL) &&
         EVP_DigestUpdate(m->inner, pad, sizeof pad);
    for (i = 0; i < 64; i++)
        pad[i] = (unsigned char)((i < SIGV4_KEY_LEN ? key[i] : 0) ^ 0x5c);
    ok = ok && EVP_DigestInit_ex(m->outer, md_for(m->outer), NULL) &&
         EVP_DigestUpdate(m->outer, pad, sizeof pad);
    OPENSSL_cleanse(pad, sizeof pad);
    if (!ok)
        return -1;
    memcpy(m->key, key, SIGV4_KEY_LEN);
    m->keyed = 1;
    return 0;
}

static int sigv4_hmac_sign(sigv4_hmac *m, const void *msg, size_t len,
                    unsigned char out[SIGV4_KEY_LEN])
{
    unsigned char inner[SHA256_DIGEST_LENGTH];
    int ok;
    if (!m->keyed)
        return -1;
    ok = EVP_MD_CTX_copy_ex(m->work, m->inner) && EVP_DigestUpdate(m->work, msg, len) &&
         EVP_DigestFinal_ex(m->work, inner, NULL) && EVP_MD_CTX_copy_ex(m->work, m->outer) &&
         EVP_DigestUpdate(m->work, inner, sizeof inner) &&
         EVP_DigestFinal_ex(m->work, out, NULL);
    OPENSSL_cleanse(inner, sizeof inner);
    return ok ? 0 : -1;
}

/* Headers a proxy may add, change or drop in transit: signing them would break requests. */
static int unsignable(const char *lname, size_t n)
{
    static const char *const names[] = {
        "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
        "trailer", "transfer-encoding", "upgrade", "user-agent", "expect", "authorization",
        "x-amzn-trace-id", NULL
    };
    int i;
    for (i = 0; names[i] != NULL; i++)
        if (strlen(names[i]) == n && memcmp(names[i], lname, n) == 0)
            return 1;
    return 0;
}

typedef struct canon_header {
    char *name;      /* lowercased */
    size_t name_len;
    const char *value;
    size_t value_len;
    size_t order;    /* original position: keeps repeated headers in the order given */
} canon_header;

static int canon_cmp(const void *a, const void *b)
{
    const canon_header *x = a, *y = b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c != 0)
        return c;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    return x->order < y->order ? -1 : (x->order > y->order);
}

/* Trims the value and folds each run of spaces and tabs into one space. */
static int add_trimmed(buf *out, const char *v, size_t n)
{
    size_t i = 0;
    int pending_space = 0;
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    while (i < n && (v[i] == ' ' || v[i] == '\t'))
        i++;
    for (; i < n; i++) {
        if (v[i] == ' ' || v[i] == '\t') {
            pending_space = 1;
            continue;
        }
        if (pending_space && buf_addc(out, ' ') != 0)
            return -1;
        pending_space = 0;
        if (buf_addc(out, v[i]) != 0)
            return -1;
    }
    return 0;
}

typedef struct query_param {
    const char *p;
    size_t key_len;
    size_t len;
} query_param;

static int query_cmp(const void *a, const void *b)
{
    const query_param *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->p, y->p, n);
    if (c != 0 || x->key_len == y->key_len) {
        if (c != 0)
            return c;
        n = x->len < y->len ? x->len : y->len;
        c = memcmp(x->p, y->p, n);
        return c != 0 ? c : (x->len < y->len ? -1 : (x->len > y->len));
    }
    return x->key_len < y->key_len ? -1 : 1;
}

/* Sorts already-encoded "k=v" pairs by key, then value; a bare key gets "=". */
static int canonical_query(buf *out, const char *q)
{
    query_param *params = NULL;
    size_t n = 0, cap = 0, i;
    const char *s = q;
    int rc = -1;
    while (s != NULL && *s) {
        const char *amp = strchr(s, '&');
        size_t len = amp ? (size_t)(amp - s) : strlen(s);
        if (len > 0) {
            const char *eq = memchr(s, '=', len);
            if (n == cap) {
                query_param *p;
                cap = cap ? cap * 2 : 8;
                p = realloc(params, cap * sizeof *params);
                if (p == NULL)
                    goto cleanup;
                params = p;
            }
            params[n].p = s;
            params[n].len = len;
            params[n].key_len = eq ? (size_t)(eq - s) : len;
            n++;
        }
        s = amp ? amp + 1 : NULL;
    }
    if (n > 1)   /* params is NULL without a query, and qsort must not be given NULL */
        qsort(params, n, sizeof *params, query_cmp);
    for (i = 0; i < n; i++) {
        if (i > 0 && buf_addc(out, '&') != 0)
            goto cleanup;
        if (buf_add(out, params[i].p, params[i].len) != 0)
            goto cleanup;
        if (params[i].key_len == params[i].len && buf_addc(out, '=') != 0)
            goto cleanup;
    }
    rc = 0;
cleanup:
    free(params);
    return rc;
}

int ddb_sigv4_canonical_request(EVP_MD_CTX *ctx, const sigv4_request *req, buf *out,
                                buf *signed_headers)
{
    canon_header *hs = NULL;
    char *names;
    size_t n = 0, i, j, total = 0;
    char payload_hash[SIGV4_HEX_LEN + 1];
    int rc = -1;

    /* one allocation holds the entries and their lowercased names */
    for (i = 0; i < req->nheaders; i++)
        total += req->headers[i].name_len + 1;
    hs = malloc(req->nheaders * sizeof *hs + total + 1);
    if (hs == NULL)
        return -1;
    names = (char *)(hs + req->nheaders);
    for (i = 0; i < req->nheaders; i++) {
        const sigv4_header *h = &req->headers[i];
        char *lname = names;
        for (j = 0; j < h->name_len; j++)
            lname[j] = (char)tolower((unsigned char)h->name[j]);
        lname[h->name_len] = '\0';
        if (unsignable(lname, h->name_len))
            continue;
        names += h->name_len + 1;
        hs[n].name = lname;
        hs[n].name_len = h->name_len;
        hs[n].value = h->value;
        hs[n].value_len = h->value_len;
        hs[n].order = i;
        n++;
    }
    if (n > 0)
        qsort(hs, n, sizeof *hs, canon_cmp);

    if (ddb_buf_adds(out, req->method) || buf_addc(out, '\n') || ddb_buf_adds(out, req->path) ||
        buf_addc(out, '\n') || canonical_query(out, req->query) || buf_addc(out, '\n'))
        goto cleanup;
    for (i = 0; i < n; i = j) {
        /* Repeated names become one line, values joined by commas in the order given. */
        if (buf_add(out, hs[i].name, hs[i].name_len) || buf_addc(out, ':'))
            goto cleanup;
        for (j = i; j < n && hs[j].name_len == hs[i].name_len &&
                    memcmp(hs[j].name, hs[i].name, hs[i].name_len) == 0; j++) {
            if (j > i && buf_addc(out, ','))
                goto cleanup;
            if (add_trimmed(out, hs[j].value, hs[j].value_len))
                goto cleanup;
        }
        if (buf_addc(out, '\n'))
            goto cleanup;
        if (signed_headers->len > 0 && buf_addc(signed_headers, ';'))
            goto cleanup;
        if (buf_add(signed_headers, hs[i].name, hs[i].name_len))
            goto cleanup;
    }
    if (buf_addc(out, '\n') || buf_add(out, signed_headers->data, signed_headers->len) ||
        buf_addc(out, '\n'))
        goto cleanup;
    if (sigv4_sha256_hex(ctx, req->body ? req->body : "", req->body_len, payload_hash) ||
        buf_add(out, payload_hash, SIGV4_HEX_LEN) || ddb_buf_cstr(out) ||
        ddb_buf_cstr(signed_headers))
        goto cleanup;
    rc = 0;
cleanup:
    free(hs);
    return rc;
}

int ddb_sigv4_scope(buf *out, const char *amz_date, const char *region, const char *service)
{
    if (strlen(amz_date) < 8)
        return -1;
    if (buf_add(out, amz_date, 8) || buf_addc(out, '/') || ddb_buf_adds(out, region) ||
        buf_addc(out, '/') || ddb_buf_adds(out, service) || ddb_buf_adds(out, "/aws4_request") ||
        ddb_buf_cstr(out))
        return -1;
    return 0;
}

int ddb_sigv4_string_to_sign(EVP_MD_CTX *ctx, buf *out, const char *amz_date, const char *scope,
                             const char *canonical_request, size_t creq_len)
{
    char hash[SIGV4_HEX_LEN + 1];
    if (sigv4_sha256_hex(ctx, canonical_request, creq_len, hash) ||
        ddb_buf_adds(out, "AWS4-HMAC-SHA256\n") || ddb_buf_adds(out, amz_date) ||
        buf_addc(out, '\n') ||
        ddb_buf_adds(out, scope) || buf_addc(out, '\n') || buf_add(out, hash, SIGV4_HEX_LEN) ||
        ddb_buf_cstr(out))
        return -1;
    return 0;
}

int ddb_sigv4_signing_key(sigv4_key_cache *cache, const char *access_key, const char *secret_key,
                          const char *amz_date, const char *region, const char *service,
                          unsigned char key[SIGV4_KEY_LEN])
{
    unsigned char k[SIGV4_KEY_LEN];
    size_t slen = strlen(secret_key);
    char *seed;

    if (strlen(amz_date) < 8)
        return -1;
    if (cache != NULL && cache->valid && memcmp(cache->date, amz_date, 8) == 0 &&
        strcmp(cache->access_key, access_key) == 0) {
        memcpy(key, cache->key, SIGV4_KEY_LEN);
        return 0;
    }
    seed = malloc(slen + 5);
    if (seed == NULL)
        return -1;
    memcpy(seed, "AWS4", 4);
    memcpy(seed + 4, secret_key, slen + 1);
    hmac256((const unsigned char *)seed, slen + 4, amz_date, 8, k);
    OPENSSL_cleanse(seed, slen + 4);
    free(seed);
    hmac256(k, SIGV4_KEY_LEN, region, strlen(region), k);
    hmac256(k, SIGV4_KEY_LEN, service, strlen(service), k);
    hmac256(k, SIGV4_KEY_LEN, "aws4_request", 12, key);
    OPENSSL_cleanse(k, sizeof k);
    if (cache != NULL && strlen(access_key) < sizeof cache->access_key) {
        strcpy(cache->access_key, access_key);
        memcpy(cache->date, amz_date, 8);
        cache->date[8] = '\0';
        memcpy(cache->key, key, SIGV4_KEY_LEN);
        cache->valid = 1;
    }
    return 0;
}

int ddb_sigv4_signature(sigv4_hmac *m, const unsigned char key[SIGV4_KEY_LEN], const char *sts,
                        size_t sts_len, char out[SIGV4_HEX_LEN + 1])
{
    unsigned char mac[SIGV4_KEY_LEN];
    if (m != NULL) {
        if (sigv4_hmac_set_key(m, key) || sigv4_hmac_sign(m, sts, sts_len, mac))
            return -1;
    } else {
        hmac256(key, SIGV4_KEY_LEN, sts, sts_len, mac);
    }
    to_hex(mac, sizeof mac, out);
    return 0;
}

int ddb_sigv4_authorization(buf *out, const char *access_key, const char *scope,
                            const char *signed_headers, const char *signature)
{
    if (ddb_buf_adds(out, "AWS4-HMAC-SHA256 Credential=") || ddb_buf_adds(out, access_key) ||
        buf_addc(out, '/') || ddb_buf_adds(out, scope) || ddb_buf_adds(out, ", SignedHeaders=") ||
        ddb_buf_adds(out, signed_headers) || ddb_buf_adds(out, ", Signature=") ||
        ddb_buf_adds(out, signature) || ddb_buf_cstr(out))
        return -1;
    return 0;
}

int ddb_sigv4_amz_date(long long epoch, char out[17])
{
    time_t t = (time_t)epoch;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return -1;
    if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        return -1;
    return 0;
}
