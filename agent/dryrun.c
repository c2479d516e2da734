/* SPDX-License-Identifier: Apache-2.0 */
#include "dryrun.h"
#include "install.h"
#include "log.h"

const struct harvester_release dry_run_release = {
        .harvester = (char *)"v1.1.2",
        .harvester_chart = (char *)CLOUDCONFIG_DEFAULT_HARVESTER_CHART,
        .kubernetes = (char *)CLOUDCONFIG_DEFAULT_KUBERNETES,
        .rancher = (char *)CLOUDCONFIG_DEFAULT_RANCHER,
        .monitoring_chart = (char *)CLOUDCONFIG_DEFAULT_MONITORING_CHART,
        .logging_chart = (char *)CLOUDCONFIG_DEFAULT_LOGGING_CHART,
        .os_name = (char *)"Harvester v1.1.2",
};

static int render_all(const struct config *c) {
        _cleanup_free_ char *hash = NULL, *custom = NULL, *harvester_config = NULL;
        char grubenv[GRUB_ENV_BLOCK_SIZE];
        const char *tty = NULL;
        int r;

        if (!isempty(c->os.password)) {
                r = cloudconfig_hash_password(c->os.password, &hash);
                if (r < 0)
                        return log_error_errno(r, "Cannot hash os.password with SHA-512 crypt: %s", strerror(-r));
        }
        r = cloudconfig_render(c, &dry_run_release, hash, &custom, &harvester_config);
        if (r < 0)
                return r;
        /* What the install adds to the image's own GRUB files: the console (into bootargs.cfg) and
         * the kernel arguments (COS_OEM/grubenv). The image's files are checked in the iso stage. */
        r = install_console(c, &tty);
        if (r < 0)
                return r;
        r = install_render_grubenv(c, grubenv);
        if (r < 0)
                return r;
        log_debug("Dry run: 90_custom.yaml %zu bytes, harvester.config %zu bytes, console %s, grubenv rendered.",
                  strlen(custom), strlen(harvester_config), tty ?: "tty1");
        if (hash)
                explicit_bzero(hash, strlen(hash));
        return 0;
}

int dry_run_render(struct config *c, bool placeholder_names) {
        struct mgmt_interface *m = &c->install.management_interface;
        bool *named = NULL;
        int r = 0;

        if (placeholder_names && config_has_mac_only_interfaces(c)) {
                named = calloc(m->n_interfaces, sizeof(bool));
                if (!named)
                        return log_oom();
                for (size_t i = 0; i < m->n_interfaces && r == 0; i++)
                        if (isempty(m->interfaces[i].name) && !isempty(m->interfaces[i].hw_addr)) {
                                /* The real name goes where this one goes: one as long as a kernel name can be. */
                                free(m->interfaces[i].name);
                                m->interfaces[i].name = strdup_printf("ens%012zu", i);
                                named[i] = true;
                                if (!m->interfaces[i].name)
                                        r = log_oom();
                        }
        }
        if (r == 0)
                r = render_all(c);
        for (size_t i = 0; named && i < m->n_interfaces; i++)
                if (named[i]) {
                        free(m->interfaces[i].name);
                        m->interfaces[i].name = NULL;
                }
        free(named);
        return r;
}
