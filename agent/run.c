/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `run`: the whole install, in the one order that keeps disks safe: configuration, memory, the ISO
 * downloaded and verified, every disk checked; only then the first write. Any failure prints one
 * "[harvester-install] FAILED: ..." line on every console, sends the FAILED webhook once the
 * configuration is known, removes the partition table if the disk was already written, and never
 * reboots.
 */
#include <getopt.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "bootentry.h"
#include "cli.h"
#include "config.h"
#include "disk.h"
#include "dryrun.h"
#include "download.h"
#include "install.h"
#include "interrupt.h"
#include "iso.h"
#include "log.h"
#include "memory.h"
#include "progress.h"
#include "report.h"
#include "webhook.h"

#define RUN_DIR "/run/harvester-install"
#define REBOOT_COUNTDOWN_SEC 5

struct stage_time {
        const char *name;
        uint64_t usec;
};

struct install_run {
        struct config *config;
        struct iso_image iso;
        struct os_image image; /* the ISO and its rootfs, mounted read-only from the iso stage on */
        struct disk_plan *disks;
        bool disks_written;  /* disks_write succeeded: a later failure must remove the table */
        bool write_failed;   /* disks_write failed and removed what it had written itself */
        const char *stage;
        uint64_t stage_start;
        struct stage_time times[8];
        size_t n_times;
        struct install_report report; /* report.h: stage times, versions, disks, ISO, result */
};

static void install_run_done(struct install_run *r) {
        progress_stop();
        report_set_current(NULL);
        report_done(&r->report);
}

/* Starts a stage; -EINTR (logged) when a signal asked the install to stop before it. */
static int stage_begin(struct install_run *r, const char *name) {
        r->stage = name;
        r->stage_start = now_usec();
        log_marker("STAGE %s", name);
        if (report_stage_begin(&r->report, name, r->stage_start, report_wall_usec()) < 0)
                log_oom();
        progress_stage(name);
        return interrupt_check("before this stage");
}

static void stage_end(struct install_run *r) {
        uint64_t now = now_usec();
        report_stage_end(&r->report, now, report_wall_usec());
        if (r->n_times < ELEMENTSOF(r->times))
                r->times[r->n_times++] = (struct stage_time){ r->stage, now - r->stage_start };
}

/* SUCCEEDED or FAILED with the report: {{.Report}}, {{.Result}}, {{.Stage}} ... (webhook.h). */
static void send_result(struct install_run *r, bool succeeded) {
        _cleanup_free_ char *json = NULL;
        progress_stop(); /* nothing after the result */
        if (report_json(&r->report, &json) < 0)
                log_oom(); /* the event goes out without its report */
        const struct webhook_event_data d = {
                .stage = r->stage,
                .report = json,
                .result = succeeded ? "succeeded" : "failed",
                .error = r->report.failure,
                .harvester_version = r->report.harvester_version,
                .iso_checksum = r->report.iso_checksum,
        };
        webhook_send_event(r->config, succeeded ? "SUCCEEDED" : "FAILED", &d, NULL);
}

/* The one place that turns a failed stage into the end of the install. */
static int run_failed(struct install_run *r, int exit_code) {
        /* A signal is the cause even when it surfaced as a failing step (a killed mkfs). */
        const char *why = interrupt_reason() ? interrupt_reason() : log_last_error();
        const char *disk_state = "Nothing was written to any disk.";

        if (r->write_failed)
                disk_state = "What had been written to the disks was wiped again.";
        else if (r->disks_written) {
                disk_state = disks_rollback(r->disks) >= 0
                                     ? "The partition table written to the install disk was removed."
                                     : "The install disk is half written and its table could not be removed: wipe it before booting from it.";
        }
        os_image_close(&r->image);
        iso_image_release(&r->iso);
        _cleanup_free_ char *line = strdup_printf(
                "%s: %s %s Fix the cause and PXE-boot the machine again; it will not reboot by itself.", r->stage,
                why ? why : "see the messages above.", disk_state);
        if (line)
                log_marker("FAILED: %s", line);
        else
                log_marker("FAILED: %s: %s", r->stage, why ? why : "see the messages above.");
        report_stage_end(&r->report, now_usec(), report_wall_usec());
        if (report_set_result(&r->report, false, line) < 0)
                log_oom();
        if (r->config)
                send_result(r, false);
        return exit_code;
}

static void print_summary(const struct config *c) {
        const struct install_config *i = &c->install;
        log_info("Install plan: mode %s, hostname %s, install disk %s%s%s.", i->mode, strempty(c->os.hostname),
                 i->device, i->data_disk ? ", data disk " : "", strempty(i->data_disk));
        if (streq_ptr(i->mode, "join"))
                log_info("Joins the cluster at %s (role %s).", c->server_url, strempty(i->role));
        else
                log_info("Creates a new cluster; VIP %s (%s).", strempty(i->vip), strempty(i->vip_mode));
        _cleanup_free_ char *mirrors = strv_join(i->iso_urls, ", ");
        log_info("ISO: %s%s, verified with %s.", strv_length(i->iso_urls) > 1 ? "mirrors " : "", strempty(mirrors),
                 i->iso_checksum ? "install.iso_checksum"
                 : i->iso_checksum_url ? i->iso_checksum_url
                                       : "nothing (no iso_checksum or iso_checksum_url)");
        log_info("Management network: %zu interface(s), %s%s.", i->management_interface.n_interfaces,
                 strempty(i->management_interface.method), i->management_interface.vlan_id > 1 ? ", VLAN" : "");
        if (i->n_webhooks > 0)
                log_info("%zu webhook(s) configured.", i->n_webhooks);
}

static void print_times(const struct install_run *r, uint64_t start) {
        for (size_t k = 0; k < r->n_times; k++)
                log_info("  %-12s %7.1f s", r->times[k].name, (double)r->times[k].usec / 1e6);
        log_info("  %-12s %7.1f s", "total", (double)(now_usec() - start) / 1e6);
        /* The agent's own peak (bench/install-bench.sh reads it): not the ISO's tmpfs, not children. */
        struct rusage ru;
        char peak[32];
        if (getrusage(RUSAGE_SELF, &ru) == 0)
                log_info("Peak memory of the agent (RSS): %s.",
                         format_bytes(peak, sizeof peak, (uint64_t)ru.ru_maxrss * 1024));
}

static int finish(const struct config *c, bool no_reboot) {
        bool off = c->install.poweroff;
        if (no_reboot) {
                log_info("--no-reboot given: the machine stays up.");
                return EXIT_OK;
        }
        for (int s = REBOOT_COUNTDOWN_SEC; s > 0; s--) {
                log_info("%s in %d s ...", off ? "Powering off" : "Rebooting", s);
                sleep(1);
        }
        sync();
        if (reboot(off ? RB_POWER_OFF : RB_AUTOBOOT) < 0)
                log_error_errno(errno, "Cannot %s: %s. The install is complete: reset the machine.",
                                off ? "power off" : "reboot", strerror(errno));
        return EXIT_INTERNAL;
}

int cmd_run(const struct global_opts *g, int argc, char **argv) {
        static const struct option options[] = {
                { "no-reboot", no_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        bool no_reboot = false;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'n':
                        no_reboot = true;
                        break;
                case 'h':
                        printf("Usage: harvester-install-agent [--cmdline FILE] [--config FILE] run [--no-reboot]\n"
                               "Installs Harvester as the configuration says. Destructive: runs only when\n"
                               "harvester.install.automatic=true is among the kernel arguments.\n");
                        return EXIT_OK;
                default:
                        return EXIT_INVALID;
                }

        uint64_t start = now_usec();
        _cleanup_(install_run_done) struct install_run run = {};
        _cleanup_config_ struct config *cfg = NULL;
        _cleanup_(disk_plan_freep) struct disk_plan *disks = NULL;

        log_open_consoles(NULL);
        /* From here on SIGTERM, SIGINT and SIGHUP end the install through run_failed(). */
        if (interrupt_setup() < 0)
                log_warning_errno(errno, "Cannot install the signal handlers: a stop of the unit ends the install without rollback.");
        if (mkdir(RUN_DIR, 0700) < 0 && errno != EEXIST)
                log_warning_errno(errno, "Cannot create %s: %s; the install log is not kept.", RUN_DIR, strerror(errno));
        else
                (void)log_set_capture_file(RUN_DIR "/console.log");
        log_marker("STAGE start");
        report_set_current(&run.report);

        if (stage_begin(&run, "configuration") < 0)
                return run_failed(&run, EXIT_INTERNAL);
        struct config_source src = { .cmdline_file = g->cmdline_file, .config_file = g->config_file,
                                     .expand_urls = true };
        r = config_load(&src, &cfg);
        if (r < 0)
                return run_failed(&run, r == -EINVAL ? EXIT_INVALID : r == -ENOMEM ? EXIT_INTERNAL : EXIT_CONFIG_URL);
        run.config = cfg;
        if (!cfg->boot.automatic) {
                log_error("harvester.install.automatic=true is not among the kernel arguments: refusing to run the install, which erases %s.",
                          cfg->install.device);
                run.config = NULL; /* not an install: no FAILED webhook */
                return run_failed(&run, EXIT_INVALID);
        }
        if (report_set_config(&run.report, cfg) < 0) {
                log_oom();
                return run_failed(&run, EXIT_INTERNAL);
        }
        progress_start(cfg, run.stage); /* PROGRESS events from here on, this stage's first */
        /* Interfaces given only by MAC get their names from this machine's NICs; then everything the
         * install writes from the configuration is rendered in memory: what cannot be, stops here. */
        r = config_resolve_interfaces(cfg, "/sys/class/net");
        if (r >= 0)
                r = dry_run_render(cfg, false);
        if (r < 0)
                return run_failed(&run, r == -ENOMEM ? EXIT_INTERNAL : EXIT_INVALID);
        print_summary(cfg);
        stage_end(&run);
        webhook_send(cfg, "STARTED");

        if (stage_begin(&run, "memory") < 0 || memory_check(cfg, NULL) < 0)
                return run_failed(&run, EXIT_PREFLIGHT);
        stage_end(&run);

        r = stage_begin(&run, "iso");
        if (r >= 0)
                r = iso_fetch(cfg, &run.iso);
        if (r < 0)
                return run_failed(&run, r == -ENOSPC ? EXIT_PREFLIGHT : EXIT_ISO);
        progress_download("ISO", run.iso.size, run.iso.size); /* 100 %, however fast it came */
        if (report_set_iso(&run.report, run.iso.digest, run.iso.size) < 0) {
                log_oom();
                return run_failed(&run, EXIT_INTERNAL);
        }
        /* Every file the install reads, checked before any disk is written; kept mounted. */
        if (os_image_open(run.iso.path, INSTALL_MNT_DIR, &run.image) < 0)
                return run_failed(&run, EXIT_ISO);
        if (report_set_release(&run.report, &run.image.release) < 0) {
                log_oom();
                return run_failed(&run, EXIT_INTERNAL);
        }
        stage_end(&run);

        if (stage_begin(&run, "disk-check") < 0 || disks_prepare(cfg, &disks) < 0)
                return run_failed(&run, EXIT_DISK);
        run.disks = disks;
        if (disk_plan_name_disks(disks, cfg) < 0) /* selectors: the disks they chose, from here on */
                return run_failed(&run, EXIT_INTERNAL);
        disk_plan_print(disks);
        if (disk_plan_efi(disks) && boot_entry_check() < 0)
                return run_failed(&run, EXIT_DISK);
        if (report_set_plan_disks(&run.report, cfg, disks) < 0) {
                log_oom();
                return run_failed(&run, EXIT_INTERNAL);
        }
        stage_end(&run);

        if (stage_begin(&run, "disk-write") < 0)
                return run_failed(&run, EXIT_DISK_WRITE);
        if (disks_write(disks) < 0) {
                run.write_failed = true;
                return run_failed(&run, EXIT_DISK_WRITE);
        }
        run.disks_written = true; /* from here on a failure removes the table */
        stage_end(&run);

        if (stage_begin(&run, "install") < 0 || install_system(cfg, disks, &run.image) < 0)
                return run_failed(&run, EXIT_INSTALL);
        /* A stop asked for during the last step still wins: the machine is going down. */
        if (interrupt_check("at the end of the install") < 0)
                return run_failed(&run, EXIT_INSTALL);
        stage_end(&run);

        os_image_close(&run.image);
        iso_image_release(&run.iso);
        if (report_set_result(&run.report, true, NULL) < 0)
                log_oom();
        send_result(&run, true);
        log_info("Installed Harvester (%s) on %s in:", cfg->install.mode, cfg->install.device);
        print_times(&run, start);
        log_marker("SUCCEEDED");
        if (install_save_log(disks, log_capture_file()) < 0)
                log_warning("The install log could not be saved to COS_OEM/install/console.log.");
        return finish(cfg, no_reboot);
}
