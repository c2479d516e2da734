/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The legacy BIOS commit point (root: it mounts): install_write_bios_loader() on a fake image root
 * holding Debian's or SLE's GRUB layout, with a fake `chroot` (HARVESTER_INSTALL_TOOL_PATH) that
 * records how it is run and what it sees inside the chroot (the stub grub.cfg already there,
 * COS_STATE bound at --boot-directory, /dev, /proc, /sys), then does grub-install's part: the core
 * image and the boot code in the disk's first sector. Checked: the arguments, the order, the
 * result, no mount left, and the failures (the tool fails, leaves no boot code, the image has no
 * GRUB for i386-pc). Exit 77 without root.
 */
#include <sys/mount.h>

#include "helpers.h"

#include "install.h"

static char *tmp;

/* An image root with the GRUB layout g (its tool and module files), the mount points of a root. */
static char *make_root(const char *name, const struct install_bios_grub *g) {
        char *root = path_in(tmp, name);
        sh("mkdir -p '%s'/dev '%s'/proc '%s'/sys '%s'/tmp '%s/%s' '%s/usr/sbin' && touch '%s/%s'", root, root, root, root,
           root, g->module_dir, root, root, g->tool);
        for (size_t i = 0; install_bios_grub_files[i]; i++)
                sh("echo module > '%s/%s/%s'", root, g->module_dir, install_bios_grub_files[i]);
        return root;
}

/* A 1 MiB "disk" whose first sector has a table's signature and no boot code. */
static char *make_disk(void) {
        char *disk = path_in(tmp, "disk.img");
        sh("rm -f '%s' && truncate -s 1M '%s' && printf '\\125\\252' | dd of='%s' bs=1 seek=510 conv=notrunc status=none",
           disk, disk, disk);
        return disk;
}

/* The fake chroot: mode "ok" does grub-install's part, "fail" fails as grub-install does, "nocode"
 * writes the core image but no boot code. */
static void fake_chroot(const char *mode, const char *dir_name) {
        char *bin = path_in(tmp, "bin"), *log = path_in(tmp, "chroot.log"), *script = path_in(bin, "chroot");
        sh("mkdir -p '%s' && rm -f '%s'", bin, log);
        FILE *f = fopen(script, "w");
        assert_non_null(f);
        fprintf(f,
                "#!/bin/sh\n"
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
                "root=$1; shift\n"
                "echo \"$root $*\" > '%s'\n"
                "st=$root/tmp/cos-state\n"
                "[ -f \"$st/%s/grub.cfg\" ] && echo stub-before >> '%s'\n"
                "grep -q \" $root/tmp/cos-state \" /proc/self/mountinfo && echo state-bound >> '%s'\n"
                "[ -c \"$root/dev/null\" ] && [ -r \"$root/proc/self/mountinfo\" ] && [ -d \"$root/sys/block\" ] && echo dev-proc-sys >> '%s'\n"
                "case %s in fail) echo 'grub-install: error: embedding is not possible.' >&2; exit 1;; esac\n"
                "mkdir -p \"$st/%s/i386-pc\" && echo core > \"$st/%s/i386-pc/core.img\"\n"
                "case %s in nocode) exit 0;; esac\n"
                "for disk; do :; done\n"
                "printf '\\353\\143\\220' | dd of=\"$disk\" conv=notrunc status=none\n",
                log, dir_name, log, log, log, mode, dir_name, dir_name, mode);
        assert_int_equal(fclose(f), 0);
        assert_int_equal(chmod(script, 0755), 0);
        assert_int_equal(setenv("HARVESTER_INSTALL_TOOL_PATH", bin, 1), 0);
        free(bin);
        free(log);
        free(script);
}

static char *read_log(void) {
        char *log = path_in(tmp, "chroot.log"), *text = NULL;
        assert_int_equal(read_full_file(log, &text, NULL), 0);
        free(log);
        return text;
}

static bool mounted_below(const char *dir) {
        char *text = NULL;
        assert_int_equal(read_full_file("/proc/self/mountinfo", &text, NULL), 0);
        char *needle = strdup_printf(" %s/", dir);
        bool found = strstr(text, needle) != NULL;
        free(needle);
        free(text);
        return found;
}

static void test_debian_grub(void **state) {
        const struct install_bios_grub *g = &install_bios_grubs[1];
        assert_string_equal(g->dir_name, "grub");
        char *root = make_root("debian", g), *st = path_in(tmp, "state-debian"), *disk = make_disk();
        sh("mkdir -p '%s'", st);
        assert_ptr_equal(install_bios_grub_find(root, NULL), g);
        fake_chroot("ok", "grub");

        assert_int_equal(install_write_bios_loader(root, st, disk), 0);
        char *log = read_log();
        char *want = strdup_printf("%s /usr/sbin/grub-install --target=i386-pc --boot-directory=/tmp/cos-state %s\n"
                                   "stub-before\nstate-bound\ndev-proc-sys\n", root, disk);
        assert_string_equal(log, want);
        /* The stub that loads COS_STATE's grub2/grub.cfg, in the directory Debian's GRUB reads. */
        char *stub = path_in(st, "grub/grub.cfg"), *text = NULL;
        assert_int_equal(read_full_file(stub, &text, NULL), 0);
        assert_string_equal(text, install_bios_stub_cfg);
        assert_non_null(strstr(text, "configfile ($root)/grub2/grub.cfg"));
        assert_false(mounted_below(root));
        free(text);
        free(stub);
        free(want);
        free(log);
        free(root);
        free(st);
        free(disk);
}

static void test_sle_grub(void **state) {
        const struct install_bios_grub *g = &install_bios_grubs[0];
        char *root = make_root("sle", g), *st = path_in(tmp, "state-sle"), *disk = make_disk();
        sh("mkdir -p '%s'", st);
        fake_chroot("ok", "grub2");
        assert_int_equal(install_write_bios_loader(root, st, disk), 0);
        char *log = read_log();
        char *want = strdup_printf("%s /usr/sbin/grub2-install --target=i386-pc --boot-directory=/tmp/cos-state %s\n"
                                   "state-bound\ndev-proc-sys\n", root, disk);
        assert_string_equal(log, want); /* no stub: grub2/ is where COS_STATE's grub.cfg is */
        char *stub = path_in(st, "grub");
        assert_int_equal(access(stub, F_OK), -1);
        assert_false(mounted_below(root));
        free(stub);
        free(want);
        free(log);
        free(root);
        free(st);
        free(disk);
}

static void test_failures(void **state) {
        const struct install_bios_grub *g = &install_bios_grubs[1];
        char *root = make_root("fail", g), *st = path_in(tmp, "state-fail"), *disk = make_disk();
        sh("mkdir -p '%s'", st);

        fake_chroot("fail", "grub");
        assert_int_equal(install_write_bios_loader(root, st, disk), -EIO);
        assert_false(mounted_below(root));

        /* The tool "succeeds" but the disk has no boot code: not bootable, an error. */
        fake_chroot("nocode", "grub");
        assert_int_equal(install_write_bios_loader(root, st, disk), -EIO);
        assert_false(mounted_below(root));

        /* No GRUB for i386-pc in the image: named, and nothing runs. */
        fake_chroot("ok", "grub");
        sh("rm '%s/usr/lib/grub/i386-pc/boot.img'", root);
        char *missing = NULL;
        assert_null(install_bios_grub_find(root, &missing));
        assert_string_equal(missing, "usr/lib/grub/i386-pc/boot.img");
        free(missing);
        char *log = path_in(tmp, "chroot.log");
        assert_int_equal(install_write_bios_loader(root, st, disk), -ENOENT);
        assert_int_equal(access(log, F_OK), -1);
        sh("rm '%s/usr/sbin/grub-install'", root);
        assert_null(install_bios_grub_find(root, &missing));
        assert_string_equal(missing, "usr/sbin/grub2-install or usr/sbin/grub-install");
        free(missing);
        free(log);
        free(root);
        free(st);
        free(disk);
}

static int setup(void **state) {
        char t[] = "/var/tmp/test-bios-loader.XXXXXX";
        if (!mkdtemp(t))
                return -1;
        tmp = strdup(t);
        return tmp ? 0 : -1;
}

static int teardown(void **state) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        int r = system(cmd);
        free(tmp);
        unsetenv("HARVESTER_INSTALL_TOOL_PATH");
        return r == 0 ? 0 : -1;
}

int main(void) {
        if (geteuid() != 0)
                return fprintf(stderr, "SKIP: not root\n"), 77;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_debian_grub),
                cmocka_unit_test(test_sle_grub),
                cmocka_unit_test(test_failures),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
