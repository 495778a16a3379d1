/* Write tokens of ddb.optimistic: random tokens and the history string kept in each item,
 * whose format only tokens.c reads and writes. */
#ifndef DDB_TOKENS_H
#define DDB_TOKENS_H

#include "compat.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

#define TOKENS_MAX_KEEP 1000
#define DDB_STR_(x) #x
#define DDB_STR(x) DDB_STR_(x)

/* sets core.random_token(n) -> n random bytes as base64url text, in the table on top */
void ddb_tokens_register(lua_State *L);
int ddb_tokens_lua_history_push(lua_State *L);    /* (old, token, keep) -> history */
int ddb_tokens_lua_history_tokens(lua_State *L);  /* (history) -> { token, ... } | nil */
/* Pushes the tokens of the history s[0..n), newest first, as a list (1), or nothing (0) when
 * it is not a history this module wrote. */
int ddb_tokens_push_list(lua_State *L, const char *s, size_t n);

DDB_HIDDEN_END

#endif
