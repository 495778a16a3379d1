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

void sigv4_sha256_hex(const void *data, size_t len, char out[SIGV4_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[SHA256_DIGEST_LENGTH];
    int i;
    SHA256((const unsigned char *)data, len, md);
    for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = digits[md[i] >> 4];
        out[2 * i + 1] = digits[md[i] & 15];
    }
    out[SIGV4_HEX_LEN] = '\0';
}

static void hmac256(const unsigned char *key, size_t key_len, const void *msg, size_t msg_len,
                    unsigned char out[SIGV4_KEY_LEN])
{
    unsigned int n = SIGV4_KEY_LEN;
    HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, msg_len, out, &n);
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

int sigv4_canonical_request(const sigv4_request *req, buf *out, buf *signed_headers)
{
    canon_header *hs = NULL;
    size_t n = 0, i, j;
    char payload_hash[SIGV4_HEX_LEN + 1];
    int rc = -1;

    if (req->nheaders > 0) {
        hs = calloc(req->nheaders, sizeof *hs);
        if (hs == NULL)
            return -1;
    }
    for (i = 0; i < req->nheaders; i++) {
        const sigv4_header *h = &req->headers[i];
        char *lname = malloc(h->name_len + 1);
        if (lname == NULL)
            goto cleanup;
        for (j = 0; j < h->name_len; j++)
            lname[j] = (char)tolower((unsigned char)h->name[j]);
        lname[h->name_len] = '\0';
        if (unsignable(lname, h->name_len)) {
            free(lname);
            continue;
        }
        hs[n].name = lname;
        hs[n].name_len = h->name_len;
        hs[n].value = h->value;
        hs[n].value_len = h->value_len;
        hs[n].order = i;
        n++;
    }
    if (n > 0)
        qsort(hs, n, sizeof *hs, canon_cmp);

    if (buf_adds(out, req->method) || buf_addc(out, '\n') || buf_adds(out, req->path) ||
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
    sigv4_sha256_hex(req->body ? req->body : "", req->body_len, payload_hash);
    if (buf_add(out, payload_hash, SIGV4_HEX_LEN) || buf_cstr(out) || buf_cstr(signed_headers))
        goto cleanup;
    rc = 0;
cleanup:
    for (i = 0; i < n; i++)
        free(hs[i].name);
    free(hs);
    return rc;
}

int sigv4_scope(buf *out, const char *amz_date, const char *region, const char *service)
{
    if (strlen(amz_date) < 8)
        return -1;
    if (buf_add(out, amz_date, 8) || buf_addc(out, '/') || buf_adds(out, region) ||
        buf_addc(out, '/') || buf_adds(out, service) || buf_adds(out, "/aws4_request") ||
        buf_cstr(out))
        return -1;
    return 0;
}

int sigv4_string_to_sign(buf *out, const char *amz_date, const char *scope,
                         const char *canonical_request, size_t creq_len)
{
    char hash[SIGV4_HEX_LEN + 1];
    sigv4_sha256_hex(canonical_request, creq_len, hash);
    if (buf_adds(out, "AWS4-HMAC-SHA256\n") || buf_adds(out, amz_date) || buf_addc(out, '\n') ||
        buf_adds(out, scope) || buf_addc(out, '\n') || buf_add(out, hash, SIGV4_HEX_LEN) ||
        buf_cstr(out))
        return -1;
    return 0;
}

int sigv4_signing_key(sigv4_key_cache *cache, const char *access_key, const char *secret_key,
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

void sigv4_signature(const unsigned char key[SIGV4_KEY_LEN], const char *sts, size_t sts_len,
                     char out[SIGV4_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char mac[SIGV4_KEY_LEN];
    int i;
    hmac256(key, SIGV4_KEY_LEN, sts, sts_len, mac);
    for (i = 0; i < SIGV4_KEY_LEN; i++) {
        out[2 * i] = digits[mac[i] >> 4];
        out[2 * i + 1] = digits[mac[i] & 15];
    }
    out[SIGV4_HEX_LEN] = '\0';
}

int sigv4_authorization(buf *out, const char *access_key, const char *scope,
                        const char *signed_headers, const char *signature)
{
    if (buf_adds(out, "AWS4-HMAC-SHA256 Credential=") || buf_adds(out, access_key) ||
        buf_addc(out, '/') || buf_adds(out, scope) || buf_adds(out, ", SignedHeaders=") ||
        buf_adds(out, signed_headers) || buf_adds(out, ", Signature=") ||
        buf_adds(out, signature) || buf_cstr(out))
        return -1;
    return 0;
}

int sigv4_amz_date(long long epoch, char out[17])
{
    time_t t = (time_t)epoch;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL)
        return -1;
    if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        return -1;
    return 0;
}
