/* Lua tables <-> JSON text for the DynamoDB wire shapes. Encoding writes text directly;
 * decoding goes through cJSON. */
#ifndef DDB_JSON_H
#define DDB_JSON_H

#include <stddef.h>
#include "compat.h"
#include "buf.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* Registry names of the marker metatables shared with the AttributeValue layer. */
#define JSON_LIST_MT "ddb{list}"
#define JSON_MAP_MT "ddb{map}"

/* Returns 1 when s[0..n) is valid UTF-8 without surrogates or overlong forms. */
int ddb_json_utf8_valid(const char *s, size_t n);

/* Encodes the value at idx. On a bad value returns -1 with a message in err. */
int ddb_json_encode(lua_State *L, int idx, buf *out, char *err, size_t errlen);

/* Pushes the decoded value, or nil and a message (returns 0 then). Arrays get the list
 * metatable so that an empty list encodes back as []. */
int ddb_json_decode(lua_State *L, const char *s, size_t n);

/* ddb_json_decode, but the member key of a top-level object is converted by fn (given the
 * cJSON node; it pushes one value or raises, which fails the decode with its message). */
typedef void (*json_push_fn)(lua_State *L, const void *node);
int ddb_json_decode_with(lua_State *L, const char *s, size_t n, const char *key, json_push_fn fn);

/* 1 when the value at idx has the metatable registered under name. */
int ddb_json_has_mt(lua_State *L, int idx, const char *name);

/* Classifies a table: 1 list (array), 0 map; -1 with a message when neither. */
int ddb_json_table_kind(lua_State *L, int idx, size_t *len, char *err, size_t errlen);

DDB_HIDDEN_END

#endif
