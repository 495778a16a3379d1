/* What every libcurl handle of the module shares: libcurl's global initialisation, the
 * options every handle gets, and the callbacks filling a transfer's curl_sink. Below both
 * transports and wire.c; it knows nothing of Lua. Needs libcurl 7.80. */
#ifndef DDB_CURL_HANDLE_H
#define DDB_CURL_HANDLE_H

#include <stddef.h>
#include <curl/curl.h>
#include "buf.h"
#include "visibility.h"

DDB_HIDDEN_BEGIN

/* Where an answer went past a limit, as the transfer callbacks saw it. */
enum { SINK_FITS = 0, SINK_BODY_TOO_LARGE, SINK_HEAD_TOO_LARGE };

/* What one transfer's callbacks fill: the answer's body and head under max_answer and
 * HTTP1_MAX_HEAD, too_large (SINK_*) saying which limit stopped it, and sends counting
 * libcurl's attempts to send it (a second is refused). */
typedef struct curl_sink {
    buf body;
    buf head;
    size_t max_answer;
    int too_large;
    int sends;
} curl_sink;

/* curl_global_init, once per process; its result every later call. */
CURLcode ddb_curl_handle_global_init(void);
/* Sets what every handle shares: the callbacks filling sink (NULL: discard what arrives, for
 * wire.c's CONNECT_ONLY handle), the error buffer, no signals, TCP_NODELAY and keep-alive,
 * TLS verified (with ca_bundle when not NULL), http and https only. */
void ddb_curl_handle_setup(CURL *e, curl_sink *sink, char *errbuf, const char *ca_bundle);
/* Sets up e to make a connection to url and nothing more (CONNECT_ONLY, HTTP/1.1 alone in
 * ALPN) within timeout_ms, the connect phase within connect_timeout_ms too, for the module's
 * own HTTP/1.1 over curl_easy_send/recv (wire.c, pool.c). */
void ddb_curl_handle_connect_only(CURL *e, const char *url, char *errbuf, const char *ca_bundle,
                                  long connect_timeout_ms, long timeout_ms);
/* 1 when a kept connection (socket fd of e, or of no handle when e is NULL: a plain socket
 * taken from libcurl) has not been closed by the server, nor sent anything on, since the
 * last answer. A TLS session ticket arriving late reads as nothing (CURLE_AGAIN). */
int ddb_curl_still_open(CURL *e, int fd);

DDB_HIDDEN_END

#endif
