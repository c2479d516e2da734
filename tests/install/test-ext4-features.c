/* SPDX-License-Identifier: Apache-2.0 */
/* The ext4 features format_device() makes are exactly FORMAT_EXT4_FEATURES (what the Harvester v1.1
 * OS's e2fsprogs 1.46 and kernel 5.14 know), with the host's mke2fs.conf and with a mke2fs.conf that
 * enables features they do not know. Unit suite: mkfs.ext4 on a regular file, read back with
 * dumpe2fs -h. */
#include "helpers.h"

#include "format.h"

static char *dir;

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "Filesystem features:" of dumpe2fs -h, sorted, space-separated. */
static char *features_of(const char *image) {
        char *argv[] = { (char *)"dumpe2fs", (char *)"-h", (char *)image, NULL };
        _cleanup_free_ char *out = NULL;
        assert_int_equal(run_command(argv, &out), 0);
        const char *line = strstr(out, "Filesystem features:");
        assert_non_null(line);
        line += strlen("Filesystem features:");
        _cleanup_free_ char *copy = strndup(line, strcspn(line, "\n"));
        assert_non_null(copy);
        char **words = NULL, *save = NULL;
        for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
                xpush(&words, w);
        qsort(words, strv_length(words), sizeof(char *), cmp_str);
        char *joined = strv_join(words, " ");
        strv_free(words);
        assert_non_null(joined);
        return joined;
}

static char *wanted(void) {
        _cleanup_free_ char *list = strdup(FORMAT_EXT4_FEATURES);
        char **words = NULL, *save = NULL;
        for (char *w = strtok_r(list, ",", &save); w; w = strtok_r(NULL, ",", &save))
                xpush(&words, w);
        qsort(words, strv_length(words), sizeof(char *), cmp_str);
        char *joined = strv_join(words, " ");
        strv_free(words);
        return joined;
}

static void make_and_check(const char *label) {
        _cleanup_free_ char *image = strdup_printf("%s/fs.img", dir);
        int fd = open(image, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 64 << 20), 0);
        close(fd);
        assert_int_equal(format_device(image, "ext4", label), 0);
        _cleanup_free_ char *got = features_of(image);
        _cleanup_free_ char *want = wanted();
        assert_string_equal(got, want);
}

static void test_host_config(void **state) {
        unsetenv("MKE2FS_CONFIG");
        make_and_check("COS_OEM");
}

static void test_hostile_config(void **state) {
        /* A build host whose mke2fs.conf turns on what e2fsprogs 1.47 offers and 1.46 cannot fsck. */
        _cleanup_free_ char *conf = strdup_printf("%s/mke2fs.conf", dir);
        write_text(conf, "[defaults]\n"
                         "\tbase_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr\n"
                         "\tblocksize = 4096\n\tinode_size = 256\n\tinode_ratio = 16384\n"
                         "[fs_types]\n"
                         "\text4 = {\n"
                         "\t\tfeatures = has_journal,extent,huge_file,flex_bg,metadata_csum,metadata_csum_seed,"
                         "64bit,dir_nlink,extra_isize,orphan_file,inline_data,encrypt\n"
                         "\t}\n");
        assert_int_equal(setenv("MKE2FS_CONFIG", conf, 1), 0);
        /* the hostile configuration really does add them when not pinned */
        _cleanup_free_ char *image = strdup_printf("%s/plain.img", dir);
        int fd = open(image, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 64 << 20), 0);
        close(fd);
        char *argv[] = { (char *)"mkfs.ext4", (char *)"-q", (char *)"-F", image, NULL };
        assert_int_equal(run_command(argv, NULL), 0);
        _cleanup_free_ char *plain = features_of(image);
        assert_non_null(strstr(plain, "metadata_csum_seed"));

        make_and_check("HARV_LH_DEFAULT");
        unsetenv("MKE2FS_CONFIG");
}

static int setup(void **state) {
        dir = tmpdir_new();
        return 0;
}

static int teardown(void **state) {
        tmpdir_remove(dir);
        return 0;
}

int main(void) {
        if (!command_exists("mkfs.ext4") || !command_exists("dumpe2fs")) {
                fprintf(stderr, "mkfs.ext4 or dumpe2fs missing (e2fsprogs)\n");
                return 1;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_host_config),
                cmocka_unit_test(test_hostile_config),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
