/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fuzz target: the renderers fed from fuzzed configurations (issue 10). The YAML input becomes a
 * configuration under a fixed kernel command line; then
 *   - every webhook's URL and payload go through the template renderer (webhook_render()) with
 *     values taken from the configuration itself (hostname, disks) and odd fixed ones;
 *     oracle: a template that renders, with values free of "{{", leaves no "{{" behind;
 *   - the configuration as `config` prints it, and the rendered webhooks, go through the log's
 *     redaction with the configuration's secrets (schema_foreach_secret()); oracle: no secret of
 *     LOG_SECRET_MIN_WORD characters or more (without '<' or '>', not part of "<redacted>") is
 *     left, and escape_controls() leaves no control byte;
 *   - a configuration without problems is rendered whole (dry_run_render(): cloud-config, the
 *     bootstrap files, harvester.config, grub.cfg).
 * libFuzzer entry point; tests/fuzz/replay.c runs it over corpus/render in normal builds. The
 * configuration engine itself is fuzz-yaml's (engineer "validate"); this target is separate.
 */
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "dryrun.h"
#include "log.h"
#include "schema.h"
#include "webhook.h"
#include "yamlload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char cmdline[] =
        "ip=dhcp console=tty1 harvester.install.automatic=true harvester.install.mode=create "
        "harvester.os.ssh_authorized_keys=k1 harvester.install.management_interface.interfaces=ens5";

static void collect(const char *secret, void *userdata) {
        (void)strv_push(userdata, secret);
}

/* Whether the oracle can judge this secret (see the top of the file). */
static bool judged(const char *secret) {
        return strlen(secret) >= LOG_SECRET_MIN_WORD && !strpbrk(secret, "<>") && !strstr("<redacted>", secret);
}

static void check_redacted(const char *text, char **secrets, const char *what) {
        char *r = log_redact_with(text, secrets);
        if (!r)
                return;
        STRV_FOREACH(s, secrets)
                if (judged(*s) && strstr(r, *s)) {
                        fprintf(stderr, "%s: secret \"%s\" left after redaction:\n%s\n", what, *s, r);
                        abort();
                }
        char *e = escape_controls(r);
        for (const unsigned char *p = (const unsigned char *)e; e && *p; p++)
                if (*p < 0x20 || *p == 0x7f) {
                        fprintf(stderr, "%s: control byte 0x%02x left by escape_controls()\n", what, *p);
                        abort();
                }
        free(e);
        free(r);
}

static bool has_braces(const char *s) {
        return s && strstr(s, "{{");
}

static void render_one(const char *tmpl, const struct webhook_values *v, bool values_clean, char **secrets) {
        char *out = NULL;
        const char *err = NULL;
        if (!tmpl || webhook_render(tmpl, v, &out, &err) != 0)
                return;
        if (values_clean && has_braces(out)) {
                fprintf(stderr, "template \"%s\" rendered with \"{{\" left: \"%s\"\n", tmpl, out);
                abort();
        }
        check_redacted(out, secrets, "webhook");
        free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (size > YAML_MAX_SIZE)
                return 0;
        struct diags d = {};
        struct config *c = NULL;
        log_set_max_level(LOG_LEVEL_ERROR + 1);
        if (config_from_text(cmdline, (const char *)data, size, "fuzz.yaml", &d, &c) < 0 || !c) {
                diags_clear(&d);
                return 0;
        }
        char **secrets = NULL;
        schema_foreach_secret(c, collect, &secrets);

        /* Webhook templates with values from the configuration itself. */
        const struct install_config *in = &c->install;
        struct webhook_values v = {
                .hostname = c->os.hostname,
                .mac = "52:54:00:12:34:56",
                .ipv4 = "10.0.0.5",
                .ipv6 = "fe80::1%ens5",
                .install_disk = { .name = in->device, .node = "/dev/sda", .by_id = "/dev/disk/by-id/ata-x",
                                  .model = "QEMU \"HARDDISK\"", .serial = "\\x\\n", .size = "1099511627776" },
                .data_disk = { .name = in->data_disk },
        };
        bool clean = !has_braces(v.hostname) && !has_braces(v.install_disk.name) && !has_braces(v.data_disk.name);
        for (size_t i = 0; i < in->n_webhooks; i++) {
                render_one(in->webhooks[i].url, &v, clean, secrets);
                render_one(in->webhooks[i].payload, &v, clean, secrets);
        }

        /* `config` output through the log's redaction. */
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        if (f) {
                int r = config_print(c, f, false, true);
                fclose(f);
                if (r == 0 && buf)
                        check_redacted(buf, secrets, "config");
                free(buf);
        }

        /* Everything the install renders, for a configuration without problems. */
        if (diags_errors(&d) == 0)
                (void)dry_run_render(c, true);

        strv_free(secrets);
        config_free(c);
        diags_clear(&d);
        return 0;
}
