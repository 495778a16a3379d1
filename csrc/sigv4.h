/* AWS Signature Version 4 in explicit stages, each reachable from tests. No Lua, no I/O. */
#ifndef DDB_SIGV4_H
#define DDB_SIGV4_H

#include <stddef.h>
#include "buf.h"
#include <openssl/evp.h>
#include "visibility.h"

DDB_HIDDEN_BEGIN

#define SIGV4_KEY_LEN 32
#define SIGV4_HEX_LEN 64

typedef struct sigv4_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} sigv4_header;

typedef struct sigv4_request {
    const char *method;
    const char *path;      /* already URI-encoded, e.g. "/" */
    const char *query;     /* "a=1&b=2" without "?", or NULL */
    const sigv4_header *headers;
    size_t nheaders;
    const char *body;
    size_t body_len;
} sigv4_request;

/* The derived key depends on the secret, the date and the scope; access_key names the
 * credential it came from so a credential change never reuses it. */
typedef struct sigv4_key_cache {
    char access_key[129];
    char date[9];
    unsigned char key[SIGV4_KEY_LEN];
    int valid;
} sigv4_key_cache;

/* HMAC-SHA256 under one signing key, reused across signatures (see sigv4.c). */
typedef struct sigv4_hmac {
    EVP_MD_CTX *inner, *outer, *work;
    unsigned char key[SIGV4_KEY_LEN];
    int keyed;
} sigv4_hmac;

void ddb_sigv4_hmac_init(sigv4_hmac *m);
void ddb_sigv4_hmac_free(sigv4_hmac *m);

/* Canonical request; signed_headers receives "a;b;c". Headers AWS must not sign
 * (hop-by-hop, user-agent, expect) are left out. Returns 0, or -1 on allocation failure. */
int ddb_sigv4_canonical_request(EVP_MD_CTX *ctx, const sigv4_request *req, buf *out,
                                buf *signed_headers);

/* amz_date is "YYYYMMDDTHHMMSSZ"; scope is "YYYYMMDD/region/service/aws4_request". */
int ddb_sigv4_scope(buf *out, const char *amz_date, const char *region, const char *service);
int ddb_sigv4_string_to_sign(EVP_MD_CTX *ctx, buf *out, const char *amz_date, const char *scope,
                             const char *canonical_request, size_t creq_len);

/* Derives (or reuses from cache) the signing key for the date in amz_date. */
int ddb_sigv4_signing_key(sigv4_key_cache *cache, const char *access_key, const char *secret_key,
                          const char *amz_date, const char *region, const char *service,
                          unsigned char key[SIGV4_KEY_LEN]);

/* m: the reusable MAC (keyed here when the key changed), or NULL for a one-off */
int ddb_sigv4_signature(sigv4_hmac *m, const unsigned char key[SIGV4_KEY_LEN], const char *sts,
                        size_t sts_len, char out[SIGV4_HEX_LEN + 1]);

int ddb_sigv4_authorization(buf *out, const char *access_key, const char *scope,
                            const char *signed_headers, const char *signature);

/* Formats a Unix time as "YYYYMMDDTHHMMSSZ"; returns -1 for an unrepresentable time. */
int ddb_sigv4_amz_date(long long epoch, char out[17]);

DDB_HIDDEN_END

#endif
