/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the YAML loader and everything after it (canonicalisation, the merge under a fixed
 * kernel command line, binding, defaults, validation, printing, the dry run). Oracles: what
 * config_print() writes, YAML or JSON, must load again without a problem; a configuration in which
 * validation reports no problem must render (dry_run_render(): the node's files and grub.cfg).
 * libFuzzer entry point; tests/fuzz/replay.c runs it over the seed corpus in normal builds.
 */
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "dryrun.h"
#include "log.h"
#include "schema.h"
#include "yamlload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char cmdline[] =
        "ip=dhcp rd.noverifyssl console=tty1 harvester.install.automatic=true harvester.install.mode=create "
        "harvester.os.ssh_authorized_keys=k1 harvester.install.management_interface.interfaces=ens5 "
        "harvester.os.labels.topology.kubernetes.io/zone=z1 harvester.os.sysctls.kernel.panic=10";

static void print_and_reload(const struct config *c, bool json) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (!f)
                return;
        int r = config_print(c, f, json, true);
        fclose(f);
        if (r == 0 && buf) {
                struct node *t = NULL;
                struct diags d = {};
                r = yaml_load(buf, len, "printed", &t, &d);
                if (r == -EINVAL || d.n > 0) {
                        fprintf(stderr, "printed %s does not load back:\n%s\n", json ? "JSON" : "YAML", buf);
                        for (size_t i = 0; i < d.n; i++) {
                                char *s = diag_format(&d.items[i]);
                                fprintf(stderr, "  %s\n", s ? s : "?");
                                free(s);
                        }
                        abort();
                }
                node_free(t);
                diags_clear(&d);
        }
        free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > YAML_MAX_SIZE)
                return 0;
        struct diags d = {};

        /* The loader alone, with paths into the tree. */
        struct node *t = NULL;
        if (yaml_load((const char *)data, size, "fuzz.yaml", &t, &d) == 0) {
                (void)node_lookup(t, "install.management_interface.interfaces[0].name");
                (void)node_lookup(t, "os.labels.\"topology.kubernetes.io/zone\"");
                node_free(t);
        }
        diags_clear(&d);

        /* The whole pipeline. */
        struct config *c = NULL;
        if (config_from_text(cmdline, (const char *)data, size, "fuzz.yaml", &d, &c) == 0) {
                for (size_t i = 0; i < d.n; i++)
                        free(diag_format(&d.items[i]));
                (void)config_where(c, "install.vip");
                print_and_reload(c, false);
                print_and_reload(c, true);
                if (diags_errors(&d) == 0) {
                        int r = dry_run_render(c, true);
                        if (r < 0) {
                                fprintf(stderr, "valid but not rendered: %s\n", strerror(-r));
                                abort();
                        }
                }
                config_free(c);
        }
        diags_clear(&d);
        log_forget_secrets();
        return 0;
}
