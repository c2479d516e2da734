/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runs a libFuzzer target over files without libFuzzer: each argument is a file or a directory
 * (every regular file in it, sorted). Linked with the fuzz targets in normal builds so that the
 * unit suite replays the seed corpus (and every crasher added to it) under the sanitizers.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_file(const char *path) {
        char *data = NULL;
        size_t len = 0;
        int r = read_full_file(path, &data, &len);
        if (r < 0) {
                fprintf(stderr, "Cannot read \"%s\": %s\n", path, strerror(-r));
                return r;
        }
        printf("replay %s (%zu bytes)\n", path, len);
        fflush(stdout);
        LLVMFuzzerTestOneInput((const uint8_t *)data, len);
        free(data);
        return 0;
}

int main(int argc, char **argv) {
        size_t n = 0;
        if (argc < 2) {
                fprintf(stderr, "Usage: %s FILE|DIR...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "Cannot stat \"%s\": %m\n", argv[i]);
                        return 1;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return 1;
                        n++;
                        continue;
                }
                DIR *dp = opendir(argv[i]);
                if (!dp) {
                        fprintf(stderr, "Cannot open \"%s\": %m\n", argv[i]);
                        return 1;
                }
                char **names = NULL;
                struct dirent *de;
                while ((de = readdir(dp)))
                        if (de->d_name[0] != '.' && strv_push(&names, de->d_name) < 0)
                                return 1;
                closedir(dp);
                if (names)
                        qsort(names, strv_length(names), sizeof(char *), cmp);
                STRV_FOREACH(name, names) {
                        char *path = strdup_printf("%s/%s", argv[i], *name);
                        if (!path || run_file(path) < 0)
                                return 1;
                        free(path);
                        n++;
                }
                strv_free(names);
        }
        printf("%zu input(s) replayed without a crash\n", n);
        if (n == 0) {
                fprintf(stderr, "No input found: the corpus is missing.\n");
                return 1;
        }
        return 0;
}
