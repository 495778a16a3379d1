/* The floor for one connection: a bare libcurl easy-handle loop (keep-alive POSTs, no
 * signing, no JSON), alternating the two requests of a with_item, bodies of the same size.
 * usage: curl_loop URL SECONDS  -> one JSON line on stdout */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <curl/curl.h>

typedef struct sink {
    char *data;
    size_t len, cap;
} sink;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    sink *s = ud;
    size_t len = size * n;
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        char *d;
        while (cap < s->len + len)
            cap *= 2;
        d = realloc(s->data, cap);
        if (d == NULL)
            return 0;
        s->data = d;
        s->cap = cap;
    }
    memcpy(s->data + s->len, p, len);
    s->len += len;
    return len;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

int main(int argc, char **argv)
{
    static const char get_body[] =
        "{\"TableName\":\"bench\",\"Key\":{\"pk\":{\"S\":\"bench#1\"}},\"ConsistentRead\":true,"
        "\"ReturnConsumedCapacity\":\"TOTAL\"}";
    static const char update_body[] =
        "{\"TableName\":\"bench\",\"Key\":{\"pk\":{\"S\":\"bench#1\"}},\"UpdateExpression\":"
        "\"SET #n1 = :v1, #n2 = :v2, #n3 = :v3\",\"ConditionExpression\":\"#n2 = :v4\","
        "\"ExpressionAttributeNames\":{\"#n1\":\"counter\",\"#n2\":\"version\",\"#n3\":"
        "\"_ddb_tokens\"},\"ExpressionAttributeValues\":{\":v1\":{\"N\":\"42\"},\":v2\":{\"N\":"
        "\"8\"},\":v3\":{\"S\":\"1 8:QUFBQUFBQUFBQUFB 7:QkJCQkJCQkJCQkJC 6:Q0NDQ0NDQ0NDQ0ND\"},"
        "\":v4\":{\"N\":\"7\"}},\"ReturnValues\":\"ALL_NEW\",\"ReturnValuesOnConditionCheckFailure\""
        ":\"ALL_OLD\",\"ReturnConsumedCapacity\":\"TOTAL\"}";
    struct curl_slist *get_h = NULL, *upd_h = NULL;
    const char *url;
    double seconds, t0, c0, t, wall;
    long requests = 0, connects = 0, failures = 0;
    sink body = {0};
    CURL *e;

    if (argc < 3) {
        fprintf(stderr, "usage: %s URL SECONDS\n", argv[0]);
        return 2;
    }
    url = argv[1];
    seconds = atof(argv[2]);
    curl_global_init(CURL_GLOBAL_ALL);
    e = curl_easy_init();
    get_h = curl_slist_append(get_h, "Content-Type: application/x-amz-json-1.0");
    get_h = curl_slist_append(get_h, "X-Amz-Target: DynamoDB_20120810.GetItem");
    get_h = curl_slist_append(get_h, "Expect:");
    upd_h = curl_slist_append(upd_h, "Content-Type: application/x-amz-json-1.0");
    upd_h = curl_slist_append(upd_h, "X-Amz-Target: DynamoDB_20120810.UpdateItem");
    upd_h = curl_slist_append(upd_h, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);

    t0 = now_s();
    c0 = cpu_s();
    do {
        int i;
        for (i = 0; i < 100; i++) {
            long n = 0;
            int upd = (int)(requests & 1);
            body.len = 0;
            curl_easy_setopt(e, CURLOPT_HTTPHEADER, upd ? upd_h : get_h);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, upd ? update_body : get_body);
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(upd ? sizeof update_body - 1
                                                                 : sizeof get_body - 1));
            if (curl_easy_perform(e) != CURLE_OK)
                failures++;
            curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &n);
            connects += n;
            requests++;
        }
        t = now_s();
    } while (t - t0 < seconds);
    wall = t - t0;
    printf("{\"requests\":%ld,\"wall_s\":%.4f,\"cpu_s\":%.4f,\"requests_per_s\":%.1f,"
           "\"cpu_us_per_request\":%.2f,\"new_connections\":%ld,\"failures\":%ld}\n",
           requests, wall, cpu_s() - c0, requests / wall, (cpu_s() - c0) / requests * 1e6,
           connects, failures);
    curl_slist_free_all(get_h);
    curl_slist_free_all(upd_h);
    curl_easy_cleanup(e);
    free(body.data);
    curl_global_cleanup();
    return failures ? 1 : 0;
}
