/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the kernel-argument parser and everything that follows it without a file
 * (canonicalisation, binding, defaults, validation, printing), plus the interface short forms.
 * libFuzzer entry point; tests/fuzz/replay.c runs it over the seed corpus in normal builds.
 */
#include <stdint.h>
#include <stdio.h>

#include "cmdline.h"
#include "config.h"
#include "log.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void print_and_discard(const struct config *c, bool json) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return;
        (void)config_print(c, f, json, true);
        fclose(f);
        free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > CMDLINE_MAX_SIZE + 16)
                return 0;
        char *text = malloc(size + 1);
        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = 0;

        /* The parser alone. */
        struct node *tree = NULL;
        struct boot_args boot = {};
        struct diags d = {};
        if (cmdline_parse(text, &tree, &boot, &d) == 0) {
                (void)schema_canonicalize(tree, NULL, &d);
                for (size_t i = 0; i < d.n; i++)
                        free(diag_format(&d.items[i]));
                node_free(tree);
                boot_args_clear(&boot);
        }
        diags_clear(&d);

        /* One interface value. */
        struct node *m = NULL;
        const char *error = NULL;
        if (cmdline_parse_interface(text, ORIGIN_CMDLINE, &m, &error) == 0)
                node_free(m);

        /* The whole pipeline without a file. */
        struct config *c = NULL;
        if (config_from_text(text, NULL, 0, NULL, &d, &c) == 0) {
                (void)config_where(c, "install.mode");
                (void)config_where(c, "install.management_interface.interfaces[0].hw_addr");
                print_and_discard(c, true);
                print_and_discard(c, false);
                config_free(c);
        }
        diags_clear(&d);
        log_forget_secrets();
        free(text);
        return 0;
}
