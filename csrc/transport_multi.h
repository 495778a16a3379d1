/* Non-blocking HTTP transport on libcurl's multi interface: many transfers in flight from
 * one Lua state, driven by poll() (lua/ddb/scheduler.lua). */
#ifndef DDB_TRANSPORT_MULTI_H
#define DDB_TRANSPORT_MULTI_H

#include "compat.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

#define MULTI_MT "ddb{multi}"

int ddb_multi_lua_new(lua_State *L);

DDB_HIDDEN_END

#endif
