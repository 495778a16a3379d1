/* Lua tables <-> JSON text for the DynamoDB wire shapes. Encoding writes text directly;
 * decoding walks the nodes jsonread.c reads. */
#ifndef DDB_JSON_H
#define DDB_JSON_H

#include <stddef.h>
#include "compat.h"
#include "buf.h"
#include "jsonread.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* Registry names of the marker metatables shared with the AttributeValue layer. */
#define JSON_LIST_MT "ddb{list}"
#define JSON_MAP_MT "ddb{map}"

/* Encodes the value at idx. On a bad value returns -1 with a message in err. */
int ddb_json_encode(lua_State *L, int idx, buf *out, char *err, size_t errlen);

/* Pushes the decoded value, or nil and a message (returns 0 then): "not valid JSON at byte
 * N: expected ..., found ..." for text that is not JSON. Arrays get the list metatable so that
 * an empty list encodes back as []; nulls are left out. */
int ddb_json_decode(lua_State *L, const char *s, size_t n);

/* A member of the top-level object read by a function of the caller's (given its node; it
 * pushes one value or raises, which fails the decode with its message). */
typedef void (*json_push_fn)(lua_State *L, const ddb_jnode *node);

typedef struct json_decode_opts {
    const char *key;     /* the top-level member handed to fn, or NULL */
    json_push_fn fn;
    int exact;           /* numbers as ddb_av_push_number_text makes them (refused when
                            DynamoDB could not store them), null as ddb.null, a member given
                            twice refused: how a person's JSON is read */
    int max_depth;       /* levels of arrays and objects; 0: DDB_JSON_MAX_DEPTH */
    const char *also;    /* when set, key is decoded as usual and fn's value of it is stored
                            under this name too (left out when fn raises) */
} json_decode_opts;

int ddb_json_decode_opts(lua_State *L, const char *s, size_t n, const json_decode_opts *o);

/* The JSON number text s[0..n) as the nearest double, in any locale. */
double ddb_json_number(const char *s, size_t n);

/* 1 when the value at idx has the metatable registered under name. */
int ddb_json_has_mt(lua_State *L, int idx, const char *name);

/* Classifies a table: 1 list (array), 0 map; -1 with a message when neither. */
int ddb_json_table_kind(lua_State *L, int idx, size_t *len, char *err, size_t errlen);

DDB_HIDDEN_END

#endif
