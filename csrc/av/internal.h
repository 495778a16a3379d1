/* What the AttributeValue files (csrc/av/) share among themselves; av.h is what the rest of
 * the core sees. */
#ifndef DDB_AV_INTERNAL_H
#define DDB_AV_INTERNAL_H

#include "../av.h"
#include "../json.h"

#define AV_MAX_DEPTH 32     /* DynamoDB's own nesting limit */
#define AV_PATH_LEN 256

/* The attribute path a refusal names ("a.b[3]"). */
typedef struct av_path {
    char s[AV_PATH_LEN];
    size_t len;
} av_path;

/* decimal.c */
/* Shortest text that reads back as exactly d (15, 16 or 17 significant digits). */
void shortest_double(double d, char *out, size_t n);
void push_dec(lua_State *L, const av_dec *x);

/* marshal.c */
size_t path_push_key(av_path *p, const char *k, size_t klen);
size_t path_push_index(av_path *p, size_t i);
void path_pop(av_path *p, size_t old);
/* Raises with the path and msg. */
int av_fail(lua_State *L, const av_path *p, const char *msg);
void push_base64(lua_State *L, const char *s, size_t n);
void check_text(lua_State *L, const av_path *p, const char *s, size_t n);
/* Reads a Lua number, number wrapper or numeric string at idx as a checked decimal. */
void read_number(lua_State *L, int idx, const av_path *p, av_dec *x);
/* Pushes the AttributeValue for the value at idx; raises naming the path on a bad value. */
void marshal_value(lua_State *L, int idx, av_path *p, int depth);

/* unmarshal.c */
/* Pushes the decoded bytes, or returns -1 on bad base64. */
int push_unbase64(lua_State *L, const char *s, size_t n);

/* compare.c */
int av_equal(lua_State *L, int a, int b, int depth);
size_t av_size(lua_State *L, int idx, int depth);

#endif
