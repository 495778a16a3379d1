/* Lua binding for SigV4 signing of DynamoDB requests. */
#ifndef DDB_SIGNER_H
#define DDB_SIGNER_H

#include "compat.h"

#define SIGNER_MT "ddb{signer}"

int signer_lua_new(lua_State *L);
void signer_register(lua_State *L);

#endif
