/* Blocking HTTP transport on one reusable libcurl easy handle (keep-alive, TLS verified). */
#ifndef DDB_TRANSPORT_CURL_H
#define DDB_TRANSPORT_CURL_H

#include "compat.h"

#define CURLT_MT "ddb{curl}"

#include <stddef.h>
#include <curl/curl.h>
#include "buf.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* The longest answer body read unless max_answer_bytes says otherwise: twice DynamoDB's
 * largest (BatchGetItem returns up to 16 MB of items, which its JSON makes somewhat longer;
 * Query and Scan pages stop at 1 MB, TransactGetItems at 4 MB), so that no real answer comes
 * near it and a broken or hostile server costs at most this much memory. */
#define CURLT_MAX_ANSWER_DEFAULT 33554432L
#define CURLT_MAX_ANSWER_MIN 1024L
#define CURLT_MAX_ANSWER_MAX 1073741824L

/* Where an answer went past a limit, as the transfer callbacks saw it. */
enum { CURLT_FITS = 0, CURLT_BODY_TOO_LARGE, CURLT_HEAD_TOO_LARGE };

int ddb_curlt_lua_new(lua_State *L);
/* The option name of the table at t as a whole number (a fraction is dropped), def when
 * absent; raises naming it when it is not a number from lo to hi (NaN included). */
long ddb_curlt_opt_long(lua_State *L, int t, const char *name, long def, long lo, long hi);
/* What the body and header callbacks of both transports do with n more bytes: 0 to take
 * them, else the CURLT_*_TOO_LARGE that says why not (the transfer is then aborted). */
int ddb_curlt_body_fits(size_t have, size_t n, size_t max);
int ddb_curlt_head_fits(size_t have, size_t n);
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
void ddb_curlt_set_common(CURL *e, const curlt_hooks *h, char *errbuf, const char *ca_bundle);
/* Replaces *slist with the "Name: value" lines of the list at idx plus "Expect:" and
 * "Accept:" (no 100-continue, no Accept surprises); raises on a bad line or no memory,
 * leaving whatever was built in *slist for its owner to free. */
void ddb_curlt_build_headers(lua_State *L, int idx, struct curl_slist **slist);
/* Pushes the raw header block as a table: lowercase names, trimmed values, last one wins. */
void ddb_curlt_push_headers(lua_State *L, const buf *head);
/* Pushes the error table for a failed transfer: code, message, applied ("no" when nothing
 * can have left), retry_class, retryable, curl_code. errbuf is libcurl's error buffer.
 * too_large (CURLT_*) says a callback stopped the transfer for a limit: AnswerTooLarge, as
 * for libcurl's own refusal of a Content-Length over CURLOPT_MAXFILESIZE. */
void ddb_curlt_push_error(lua_State *L, CURL *easy, CURLcode rc, int too_large, size_t max,
                      char *errbuf, size_t errlen);
void ddb_curlt_register(lua_State *L);

DDB_HIDDEN_END

#endif
