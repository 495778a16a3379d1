/* The DynamoDB JSON protocol: signed request headers, response decoding, error classification. */
#ifndef DDB_PROTOCOL_H
#define DDB_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>
#include "compat.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* Where an error leaves the request: never reached DynamoDB, or may have been applied. */
#define PROTO_APPLIED_NO "no"
#define PROTO_APPLIED_MAYBE "maybe"

/* An HTTP answer as the parser needs it. */
typedef struct proto_answer {
    int status;
    const char *body;
    size_t body_len;
    const char *crc;          /* the x-amz-crc32 header, NUL-terminated; NULL when absent */
    const char *request_id;   /* x-amzn-requestid (or x-amz-request-id); NULL when absent */
    size_t request_id_len;
} proto_answer;

/* Pushes the result table, or nil and the error table (code, message, status, applied,
 * retry_class, request_id, item, cancellation_reasons): what parse_response returns.
 * plain: a top-level member holding an item ("Attributes"), pushed as plain values; "+Item":
 * Item as AttributeValues and the same item as plain values under "plain". */
int ddb_proto_parse(lua_State *L, const proto_answer *a, const char *plain);
/* Lua: (status, body, headers[, plain]) -> result | nil, err
 * plain: a top-level member holding an item ("Attributes"), returned as plain values. */
int ddb_proto_lua_parse_response(lua_State *L);
/* Pushes an error table: code, message (code when NULL), status (when > 0), applied,
 * retry_class, retryable (the class is not "none"). */
void ddb_proto_push_error(lua_State *L, const char *code, const char *message, int status,
                          const char *applied, const char *retry_class);
/* Lua: (code, message, status, applied, retry_class) -> err table */
int ddb_proto_lua_error(lua_State *L);
/* Lua: (string[, crc]) -> crc32 */
int ddb_proto_lua_crc32(lua_State *L);

DDB_HIDDEN_END

#endif
