/* Blocking HTTP transport on one reusable libcurl easy handle (keep-alive, TLS verified). */
#ifndef DDB_TRANSPORT_CURL_H
#define DDB_TRANSPORT_CURL_H

#include "compat.h"

#define CURLT_MT "ddb{curl}"

#include <stddef.h>
#include <curl/curl.h>
#include "buf.h"

int curlt_lua_new(lua_State *L);
/* The callbacks of a transfer and the pointer they are given. */
typedef struct curlt_hooks {
    curl_write_callback on_body, on_header;
    int (*on_prereq)(void *ud, char *primary_ip, char *local_ip, int primary_port,
                     int local_port);   /* refuses silent resends; NULL before 7.80 */
    void *ud;
} curlt_hooks;
/* Sets what every transfer of both transports shares: the hooks, the error buffer, no
 * signals, TCP_NODELAY and keep-alive, TLS verified (with ca_bundle when not NULL), http and
 * https only. */
void curlt_set_common(CURL *e, const curlt_hooks *h, char *errbuf, const char *ca_bundle);
/* Replaces *slist with the "Name: value" lines of the list at idx plus "Expect:" and
 * "Accept:" (no 100-continue, no Accept surprises); raises on a bad line or no memory,
 * leaving whatever was built in *slist for its owner to free. */
void curlt_build_headers(lua_State *L, int idx, struct curl_slist **slist);
/* Pushes the raw header block as a table: lowercase names, trimmed values, last one wins. */
void curlt_push_headers(lua_State *L, const buf *head);
/* Pushes the error table for a failed transfer: code, message, applied ("no" when nothing
 * can have left), retry_class, retryable, curl_code. errbuf is libcurl's error buffer. */
void curlt_push_error(lua_State *L, CURL *easy, CURLcode rc, char *errbuf, size_t errlen);
void curlt_register(lua_State *L);

#endif
