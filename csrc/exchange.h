/* Lua binding of the HTTP/1.1 for transports that move the bytes in Lua (cosockets): build a
 * signed request in one string, feed the answer's bytes as they arrive, get the result. */
#ifndef DDB_EXCHANGE_H
#define DDB_EXCHANGE_H

#include "compat.h"
#include "visibility.h"

#define EXCHANGE_MT "ddb{exchange}"

DDB_HIDDEN_BEGIN
int ddb_exchange_lua_new(lua_State *L);
void ddb_exchange_register(lua_State *L);
DDB_HIDDEN_END

#endif
