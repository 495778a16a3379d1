/* Write tokens of ddb.optimistic: random tokens and the history string kept in each item. */
#ifndef DDB_TOKENS_H
#define DDB_TOKENS_H

#include "compat.h"

int tokens_lua_random(lua_State *L);         /* (n) -> n random bytes as base64url text */
int tokens_lua_history_push(lua_State *L);   /* (old, version, token, limit) -> history */

#endif
