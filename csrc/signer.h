/* Lua binding for SigV4 signing: a generic request signer (any service) and its DynamoDB
 * wrapper, the signing key kept in C. */
#ifndef DDB_SIGNER_H
#define DDB_SIGNER_H

#include <stddef.h>
#include "compat.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

#define SIGNER_MT "ddb{signer}"

typedef struct signer signer;

/* The signed header lines of one request, in the order they go on the wire. The strings
 * belong to the signer and stay valid until its next signature or until it is collected. */
#define SIGNER_MAX_LINES 8
typedef struct signer_lines {
    const char *line[SIGNER_MAX_LINES];   /* "Name: value", NUL-terminated */
    signed char fixed[SIGNER_MAX_LINES];  /* a line that never changes (0..2) or -1 */
    int n;
} signer_lines;

int ddb_signer_lua_new(lua_State *L);
void ddb_signer_register(lua_State *L);
/* The signer at stack index idx (raises if it is not one). */
signer *ddb_signer_check(lua_State *L, int idx);
/* Signs a DynamoDB request (operation name, JSON body) and fills out; the time is the
 * number at stack index epoch_idx when that is not 0 and not nil, else the clock plus the
 * signer's skew. Raises on a bad operation name, a closed signer or no memory. Returns the
 * number of lines. */
int ddb_signer_sign(lua_State *L, signer *s, const char *op, size_t oplen, const char *body,
                    size_t body_len, int epoch_idx, signer_lines *out);

DDB_HIDDEN_END

#endif
