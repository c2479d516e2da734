/* SPDX-License-Identifier: Apache-2.0 */
/* Retry decisions of the download: which curl results and HTTP statuses are retried, which fail at once. */
#include <curl/curl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "download.h"
#include "util.h"

static void test_classify(void **state) {
        static const struct {
                int cc;
                long status;
                enum download_verdict want;
        } t[] = {
                { CURLE_OK, 200, DOWNLOAD_DONE },
                { CURLE_OK, 206, DOWNLOAD_DONE },
                { CURLE_OK, 0, DOWNLOAD_DONE },                    /* file:// */
                /* statuses worth retrying */
                { CURLE_HTTP_RETURNED_ERROR, 408, DOWNLOAD_RETRY },
                { CURLE_HTTP_RETURNED_ERROR, 429, DOWNLOAD_RETRY },
                { CURLE_HTTP_RETURNED_ERROR, 500, DOWNLOAD_RETRY },
                { CURLE_HTTP_RETURNED_ERROR, 502, DOWNLOAD_RETRY },
                { CURLE_HTTP_RETURNED_ERROR, 503, DOWNLOAD_RETRY },
                { CURLE_HTTP_RETURNED_ERROR, 504, DOWNLOAD_RETRY },
                { CURLE_HTTP_RETURNED_ERROR, 599, DOWNLOAD_RETRY },
                /* other 4xx: at once */
                { CURLE_HTTP_RETURNED_ERROR, 400, DOWNLOAD_FAIL },
                { CURLE_HTTP_RETURNED_ERROR, 401, DOWNLOAD_FAIL },
                { CURLE_HTTP_RETURNED_ERROR, 403, DOWNLOAD_FAIL },
                { CURLE_HTTP_RETURNED_ERROR, 404, DOWNLOAD_FAIL },
                { CURLE_HTTP_RETURNED_ERROR, 410, DOWNLOAD_FAIL },
                { CURLE_HTTP_RETURNED_ERROR, 416, DOWNLOAD_FAIL },
                { CURLE_HTTP_RETURNED_ERROR, 451, DOWNLOAD_FAIL },
                { CURLE_OK, 304, DOWNLOAD_FAIL },                  /* a final 3xx is no file */
                /* dropped, refused, stalled connections: retried (resumed) */
                { CURLE_PARTIAL_FILE, 200, DOWNLOAD_RETRY },
                { CURLE_PARTIAL_FILE, 206, DOWNLOAD_RETRY },
                { CURLE_RECV_ERROR, 200, DOWNLOAD_RETRY },
                { CURLE_COULDNT_CONNECT, 0, DOWNLOAD_RETRY },
                { CURLE_COULDNT_RESOLVE_HOST, 0, DOWNLOAD_RETRY },
                { CURLE_OPERATION_TIMEDOUT, 200, DOWNLOAD_RETRY },
                { CURLE_GOT_NOTHING, 0, DOWNLOAD_RETRY },
                { CURLE_SEND_ERROR, 0, DOWNLOAD_RETRY },
                /* our own write errors, bad URLs, TLS trust: at once */
                { CURLE_WRITE_ERROR, 200, DOWNLOAD_FAIL },
                { CURLE_ABORTED_BY_CALLBACK, 200, DOWNLOAD_FAIL },
                { CURLE_URL_MALFORMAT, 0, DOWNLOAD_FAIL },
                { CURLE_UNSUPPORTED_PROTOCOL, 0, DOWNLOAD_FAIL },
                { CURLE_PEER_FAILED_VERIFICATION, 0, DOWNLOAD_FAIL },
                { CURLE_FILE_COULDNT_READ_FILE, 0, DOWNLOAD_FAIL },
                { CURLE_TOO_MANY_REDIRECTS, 302, DOWNLOAD_FAIL },
        };
        for (size_t i = 0; i < ELEMENTSOF(t); i++) {
                enum download_verdict v = download_classify(t[i].cc, t[i].status);
                if (v != t[i].want)
                        fail_msg("curl %d, HTTP %ld: got %d, want %d", t[i].cc, t[i].status, v, t[i].want);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_classify),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
