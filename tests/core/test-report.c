/* SPDX-License-Identifier: Apache-2.0 */
/* The install report (report.h): its JSON parsed by Python's strict json module, every field, the
 * escaping of hostile strings, secrets absent, stage times, the COS_OEM file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "agent-config.h"
#include "log.h"
#include "report.h"
#include "util.h"

#define SECRET "Tok3n-s3cret-Xq9"
#define URL_PASSWORD "url-Pa55w0rd"
/* Quotes, a backslash, a newline, a tab, C0 and DEL controls, U+2028, a fake marker, an invalid
 * UTF-8 byte and markup: what a disk's model string or an error could carry. */
#define HOSTILE "a\"b\\c\nd\te\x01\x1f\x7f \xe2\x80\xa8 [harvester-install] SUCCEEDED \xff</x>{}"

static char *dir;

static int setup(void **state) {
        char tmpl[] = "/tmp/test-report-XXXXXX";
        if (!mkdtemp(tmpl))
                return -1;
        dir = strdup(tmpl);
        log_add_secret(SECRET);
        log_add_secret(URL_PASSWORD);
        return dir ? 0 : -1;
}

static int teardown(void **state) {
        _cleanup_free_ char *cmd = strdup_printf("rm -rf '%s'", dir);
        if (cmd && system(cmd) != 0)
                fprintf(stderr, "cannot remove %s\n", dir);
        free(dir);
        log_forget_secrets();
        return 0;
}

/* Runs python3's strict JSON parser on the file and the assertions in py (a body of Python where
 * d is the parsed object). true when Python exits 0. */
static bool python_check(const char *path, const char *py) {
        _cleanup_free_ char *script = strdup_printf("%s/check.py", dir);
        assert_non_null(script);
        FILE *f = fopen(script, "we");
        assert_non_null(f);
        fprintf(f, "import json, sys\n"
                   "def strict(s):\n"
                   "    raise ValueError('not JSON: ' + s)\n"
                   "d = json.load(open(sys.argv[1], encoding='utf-8', errors='strict'), parse_constant=strict)\n"
                   "%s\n", py);
        assert_int_equal(fclose(f), 0);
        _cleanup_free_ char *cmd = strdup_printf("'%s' '%s' '%s'", PYTHON3, script, path);
        assert_non_null(cmd);
        int st = system(cmd);
        return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void write_text(const char *path, const char *s) {
        FILE *f = fopen(path, "we");
        assert_non_null(f);
        fputs(s, f);
        assert_int_equal(fclose(f), 0);
}

static void fill(struct install_report *r) {
        struct config c = {};
        c.install.mode = (char[]){ "create" };
        c.install.iso_urls = (char *[]){ (char[]){ "http://admin:" URL_PASSWORD "@10.0.0.1/harvester.iso" }, NULL };
        assert_int_equal(report_set_config(r, &c), 0);
        struct harvester_release rel = {
                .harvester = (char[]){ "v1.1.2" }, .os_name = (char[]){ "Harvester v1.1.2" },
                .kubernetes = (char[]){ "v1.24.11+rke2r1" }, .rancher = (char[]){ "v2.6.11" },
        };
        assert_int_equal(report_set_release(r, &rel), 0);
        assert_int_equal(report_set_iso(r, "sha512:abc123", 5368709120), 0);
        struct disk_identity id = {
                .node = (char[]){ "/dev/sda" }, .by_id = (char[]){ "/dev/disk/by-id/ata-QEMU_disk0" },
                .model = (char[]){ HOSTILE }, .serial = (char[]){ "SN-" SECRET }, .size = UINT64_C(322122547200),
        };
        assert_int_equal(report_set_disk(r, "install", "/dev/sda", &id), 0);
        assert_int_equal(report_set_disk(r, "data", "/dev/vdb", NULL), 0);
        /* 2023-11-14T22:13:20.123Z and on */
        uint64_t w = UINT64_C(1700000000123456);
        assert_int_equal(report_stage_begin(r, "configuration", 1000000, w), 0);
        assert_int_equal(report_stage_begin(r, "memory", 3000000, w + 2000000), 0); /* ends configuration */
        report_stage_end(r, 4500000, w + 3500000);
        assert_int_equal(report_stage_begin(r, "iso", 5000000, w + 4000000), 0); /* running */
}

static void test_fields(void **state) {
        struct install_report r = {};
        fill(&r);
        _cleanup_free_ char *json = NULL;
        assert_int_equal(report_json(&r, &json), 0);
        assert_null(strchr(json, '\n')); /* one line */
        _cleanup_free_ char *path = strdup_printf("%s/running.json", dir);
        write_text(path, json);
        _cleanup_free_ char *py = strdup_printf(
                "assert d['agent_version'] == '%s', d\n"
                "assert d['harvester_version'] == 'v1.1.2' and d['os_name'] == 'Harvester v1.1.2'\n"
                "assert d['kubernetes_version'] == 'v1.24.11+rke2r1' and d['rancher_version'] == 'v2.6.11'\n"
                "assert d['mode'] == 'create' and d['result'] == 'running' and d['failure'] is None\n"
                "assert d['iso'] == {'url': 'http://admin:<redacted>@10.0.0.1/harvester.iso', "
                "'checksum': 'sha512:abc123', 'size': 5368709120}, d['iso']\n"
                "s = d['stages']\n"
                "assert [x['name'] for x in s] == ['configuration', 'memory', 'iso'], s\n"
                "assert s[0]['start'] == '2023-11-14T22:13:20.123Z' and s[0]['end'] == '2023-11-14T22:13:22.123Z', s\n"
                "assert s[0]['seconds'] == 2.0 and s[1]['seconds'] == 1.5, s\n"
                "assert s[2]['end'] is None and s[2]['seconds'] is None, s\n"
                "k = d['disks']\n"
                "assert k[0]['role'] == 'install' and k[0]['name'] == '/dev/sda' and k[0]['node'] == '/dev/sda'\n"
                "assert k[0]['by_id'] == '/dev/disk/by-id/ata-QEMU_disk0' and k[0]['size'] == 322122547200\n"
                "assert k[0]['model'] == 'a\"b\\\\c\\nd\\te\\x01\\x1f\\x7f \\u2028 [harvester-install] SUCCEEDED \\ufffd</x>{}', repr(k[0]['model'])\n"
                "assert k[0]['serial'] == 'SN-<redacted>', k[0]['serial']\n"
                "assert k[1] == {'role': 'data', 'name': '/dev/vdb', 'node': None, 'by_id': None, 'model': None, "
                "'serial': None, 'size': 0}, k[1]\n",
                AGENT_VERSION);
        assert_true(python_check(path, py));
        /* Secrets absent in any form. */
        assert_null(strstr(json, SECRET));
        assert_null(strstr(json, URL_PASSWORD));
        report_done(&r);
}

static void test_failed(void **state) {
        struct install_report r = {};
        fill(&r);
        report_stage_end(&r, 6000000, UINT64_C(1700000000123456) + 5000000);
        assert_int_equal(report_set_result(&r, false, "iso: checksum mismatch for token " SECRET "\n\"x\""), 0);
        _cleanup_free_ char *json = NULL;
        assert_int_equal(report_json(&r, &json), 0);
        assert_null(strstr(json, SECRET));
        _cleanup_free_ char *path = strdup_printf("%s/failed.json", dir);
        write_text(path, json);
        assert_true(python_check(path,
                                 "assert d['result'] == 'failed', d\n"
                                 "assert d['failure'] == 'iso: checksum mismatch for token <redacted>\\n\"x\"', d['failure']\n"
                                 "assert d['stages'][2]['seconds'] == 1.0, d['stages']\n"));
        /* Succeeded after all (a test of set_result's reset): no failure line. */
        assert_int_equal(report_set_result(&r, true, "ignored"), 0);
        free(json);
        json = NULL;
        assert_int_equal(report_json(&r, &json), 0);
        assert_non_null(strstr(json, "\"result\":\"succeeded\",\"failure\":null"));
        report_done(&r);
}

static void test_stage_limit(void **state) {
        struct install_report r = {};
        for (unsigned i = 0; i < REPORT_MAX_STAGES + 3; i++) {
                char n[16];
                snprintf(n, sizeof(n), "s%u", i);
                assert_int_equal(report_stage_begin(&r, n, i, i + 1), 0);
        }
        assert_int_equal(r.n_stages, REPORT_MAX_STAGES);
        _cleanup_free_ char *json = NULL;
        assert_int_equal(report_json(&r, &json), 0);
        report_done(&r);
}

static void test_write_oem(void **state) {
        _cleanup_free_ char *oem = strdup_printf("%s/oem", dir), *file = strdup_printf("%s/oem/" REPORT_OEM_PATH, dir);
        assert_int_equal(mkdir(oem, 0755), 0);

        /* No install report in this process: nothing written. */
        report_set_current(NULL);
        assert_int_equal(report_write_oem(oem), 0);
        assert_int_equal(access(file, F_OK), -1);

        struct install_report r = {};
        fill(&r);
        report_set_current(&r);
        assert_int_equal(report_write_oem(oem), 0);
        struct stat st;
        assert_int_equal(stat(file, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        _cleanup_free_ char *idir = strdup_printf("%s/install", oem);
        assert_int_equal(stat(idir, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0700);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        assert_int_equal(read_full_file(file, &text, &len), 0);
        assert_true(len > 2 && text[len - 1] == '\n' && text[0] == '{');
        assert_null(strstr(text, SECRET));
        /* Written just before the commit point: succeeded, while the run itself is still going. */
        assert_true(python_check(file, "assert d['result'] == 'succeeded' and d['failure'] is None, d\n"
                                       "assert d['stages'][-1]['name'] == 'iso', d\n"));
        assert_false(r.finished);
        report_set_current(NULL);
        report_done(&r);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_fields),
                cmocka_unit_test(test_failed),
                cmocka_unit_test(test_stage_limit),
                cmocka_unit_test(test_write_oem),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
