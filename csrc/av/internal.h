/* What the AttributeValue files (csrc/av/) share among themselves; av.h is what the rest of
 * the core sees. */
#ifndef DDB_AV_INTERNAL_H
#define DDB_AV_INTERNAL_H

#include "../av.h"
#include "../json.h"
#include "../visibility.h"

DDB_HIDDEN_BEGIN

#define AV_MAX_DEPTH 32     /* DynamoDB's own nesting limit */
#define AV_PATH_LEN 256

/* The attribute path a refusal names ("a.b[3]"). */
typedef struct av_path {
    char s[AV_PATH_LEN];
    size_t len;
} av_path;

/* decimal.c */
void ddb_push_dec(lua_State *L, const av_dec *x);

/* marshal.c */
size_t ddb_path_push_key(av_path *p, const char *k, size_t klen);
void ddb_path_pop(av_path *p, size_t old);
/* Raises with the path and msg. */
int ddb_av_fail(lua_State *L, const av_path *p, const char *msg);
void ddb_check_text(lua_State *L, const av_path *p, const char *s, size_t n);
/* Reads a Lua number, number wrapper or numeric string at idx as a checked decimal. */
void ddb_read_number(lua_State *L, int idx, const av_path *p, av_dec *x);
/* Pushes the AttributeValue for the value at idx; raises naming the path on a bad value. */
void ddb_marshal_value(lua_State *L, int idx, av_path *p, int depth);

/* unmarshal.c */

/* doc.c: orders member nodes (const ddb_jnode *) by name, then by place */
int ddb_av_member_cmp(const void *a, const void *b);
/* Sorts count member nodes by name; 0 when a name comes twice. */
int ddb_av_members_sort(const ddb_jnode **m, size_t count);
#define AV_SMALL_MAP 8   /* members looked up one by one rather than by halves */
/* The member named k[0..n) among count sorted so (in any order when there are AV_SMALL_MAP
 * or fewer), or NULL. */
const ddb_jnode *ddb_av_member_find(const ddb_jnode *const *m, size_t count, const char *k,
                                    size_t n);

/* compare.c */
int ddb_av_equal(lua_State *L, int a, int b, int depth);
size_t ddb_av_size(lua_State *L, int idx, int depth);
size_t ddb_av_node_size(const ddb_jnode *n, int depth);
size_t ddb_av_node_size_any(lua_State *L, const ddb_jnode *n, int depth);

DDB_HIDDEN_END

#endif
