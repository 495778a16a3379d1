/* Blocking HTTP transport on one reusable libcurl easy handle (keep-alive, TLS verified). */
#ifndef DDB_TRANSPORT_CURL_H
#define DDB_TRANSPORT_CURL_H

#include "compat.h"

#define CURLT_MT "ddb{curl}"

int curlt_lua_new(lua_State *L);
void curlt_register(lua_State *L);

#endif
