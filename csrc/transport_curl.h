/* Blocking HTTP transport on one reusable libcurl easy handle (keep-alive, TLS verified). */
#ifndef DDB_TRANSPORT_CURL_H
#define DDB_TRANSPORT_CURL_H

#include "compat.h"

#define CURLT_MT "ddb{curl}"

#include <stddef.h>
#include <curl/curl.h>
#include "buf.h"
#include "curl_handle.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* The longest answer body read unless max_answer_bytes says otherwise: twice DynamoDB's
 * largest (BatchGetItem returns up to 16 MB of items, which its JSON makes somewhat longer;
 * Query and Scan pages stop at 1 MB, TransactGetItems at 4 MB), so that no real answer comes
 * near it and a broken or hostile server costs at most this much memory. */
#define CURLT_MAX_ANSWER_DEFAULT 33554432L
#define CURLT_MAX_ANSWER_MIN 1024L
#define CURLT_MAX_ANSWER_MAX 1073741824L

int ddb_curlt_lua_new(lua_State *L);
/* The option name of the table at t as a whole number (a fraction is dropped), def when
 * absent; raises naming it when it is not a number from lo to hi (NaN included). */
long ddb_curlt_opt_long(lua_State *L, int t, const char *name, long def, long lo, long hi);
/* A request's timeout argument at idx in milliseconds: 10000 when absent, at least 1. */
long ddb_curlt_timeout_arg(lua_State *L, int idx);
/* Replaces *slist with the "Name: value" lines of the list at idx plus "Expect:" and
 * "Accept:" (no 100-continue, no Accept surprises); raises on a bad line or no memory,
 * leaving whatever was built in *slist for its owner to free. */
void ddb_curlt_build_headers(lua_State *L, int idx, struct curl_slist **slist);
/* The same for n C strings (copied): 0, or -1 on no memory (what was built stays in *slist
 * for its owner to free). */
int ddb_curlt_copy_lines(const char *const *lines, size_t n, struct curl_slist **slist);
/* Pushes the raw header block as a table: lowercase names, trimmed values, last one wins. */
void ddb_curlt_push_headers(lua_State *L, const buf *head);
/* Pushes the error table for a failed transfer: code, message, applied ("no" when nothing
 * can have left), retry_class, retryable, curl_code. errbuf is libcurl's error buffer.
 * too_large (SINK_*) says a callback stopped the transfer for a limit: AnswerTooLarge, as
 * for libcurl's own refusal of a Content-Length over CURLOPT_MAXFILESIZE. */
void ddb_curlt_push_error(lua_State *L, CURL *easy, CURLcode rc, int too_large, size_t max,
                          char *errbuf, size_t errlen);
/* Pushes a transport error: the protocol's error table (ddb_proto_push_error) and libcurl's
 * code as curl_code (CURLE_OK for a failure of the HTTP itself). */
void ddb_curlt_push_failure(lua_State *L, const char *code, const char *message,
                            const char *applied, const char *cls, CURLcode rc);
/* Pushes what call() returns for an HTTP answer (status, the raw head block, the body):
 * result, nil, status, request_id (4) | nil, err, status, headers, resent (5), the request id
 * from x-amzn-requestid or else x-amz-request-id, the body checked against x-amz-crc32. */
int ddb_curlt_push_answer(lua_State *L, int status, const buf *head, const char *body,
                          size_t body_len, const char *plain, int resent);
void ddb_curlt_register(lua_State *L);

DDB_HIDDEN_END

#endif
