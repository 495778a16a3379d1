/* What one read of an item tells the engine, read from its item doc (core.doc_state; the Lua
 * side is lua/ddb/engine/state.lua). */
#ifndef DDB_STATE_H
#define DDB_STATE_H

#include "compat.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* sets core.doc_state in the table on top */
void ddb_state_register(lua_State *L);

DDB_HIDDEN_END

#endif
