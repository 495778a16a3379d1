/* Blocking HTTP transport on one reusable libcurl easy handle (keep-alive, TLS verified). */
#ifndef DDB_TRANSPORT_CURL_H
#define DDB_TRANSPORT_CURL_H

#include "compat.h"

#define CURLT_MT "ddb{curl}"

#include <stddef.h>
#include <curl/curl.h>
#include "buf.h"

int curlt_lua_new(lua_State *L);
/* Pushes the error table for a failed transfer: code, message, applied ("no" when nothing
 * can have left), retry_class, retryable, curl_code. errbuf is libcurl's error buffer. */
/* Replaces *slist with the "Name: value" lines of the list at idx plus "Expect:" and
 * "Accept:" (no 100-continue, no Accept surprises); raises on a bad line or no memory,
 * leaving whatever was built in *slist for its owner to free. */
void curlt_build_headers(lua_State *L, int idx, struct curl_slist **slist);
/* Pushes the raw header block as a table: lowercase names, trimmed values, last one wins. */
void curlt_push_headers(lua_State *L, const buf *head);
void curlt_push_error(lua_State *L, CURL *easy, CURLcode rc, char *errbuf, size_t errlen);
void curlt_register(lua_State *L);

#endif
