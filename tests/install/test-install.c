/* SPDX-License-Identifier: Apache-2.0 */
/* The install steps over directories: grub.cfg (console, serial terminal, kernel arguments), the
 * loader on the ESP, kernel-side sparse copies, OS images from a tree (mke2fs -d, tune2fs), image
 * bundles, the saved log. No root needed. */
#include <blkid.h>
#include <regex.h>

#include "helpers.h"

#include "install.h"
#include "log.h"

static char *path_in(const char *dir, const char *name) {
        char *p = strdup_printf("%s/%s", dir, name);
        assert_non_null(p);
        return p;
}

static void write_bytes(const char *path, const void *data, size_t len, off_t at) {
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, data, len, at), (ssize_t)len);
        close(fd);
}

static void mkdirs(const char *base, const char *rel) {
        char *p = path_in(base, rel);
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
        assert_int_equal(system(cmd), 0);
        free(p);
}

static bool files_equal(const char *a, const char *b) {
        char *x = NULL, *y = NULL;
        size_t lx = 0, ly = 0;
        assert_int_equal(read_full_file(a, &x, &lx), 0);
        assert_int_equal(read_full_file(b, &y, &ly), 0);
        bool eq = lx == ly && memcmp(x, y, lx) == 0;
        free(x);
        free(y);
        return eq;
}

static size_t count_matches(const char *text, const char *pattern) {
        regex_t re;
        regmatch_t m;
        size_t n = 0;
        assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE), 0);
        for (const char *p = text; regexec(&re, p, 1, &m, p == text ? 0 : REG_NOTBOL) == 0; p += m.rm_eo ? m.rm_eo : 1)
                n++;
        regfree(&re);
        return n;
}

/* GRUB's own parser accepts the script (grub-script-check, Debian package grub-common). */
static void grub_syntax_ok(const char *cfg) {
        if (system("command -v grub-script-check >/dev/null 2>&1") != 0)
                fail_msg("grub-script-check is missing: install the Debian package grub-common");
        char path[] = "/tmp/test-grub-XXXXXX";
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        write_text(path, cfg);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "grub-script-check '%s'", path);
        int rc = system(cmd);
        unlink(path);
        if (rc != 0)
                fail_msg("grub-script-check refuses:\n%s", cfg);
}

/* ---------------------------------------------------------------------------------------------- */

static void test_grub_cfg_serial(void **state) {
        struct config *c = config_new("create");
        c->install.tty = xstrdup("ttyS1,115200n8");
        c->os.additional_kernel_arguments = xstrdup("rd.debug foo=\"a b\" multipath=off");
        char *cfg = NULL;
        assert_int_equal(install_render_grub_cfg(c, &cfg), 0);
        golden_check("grub-serial.cfg", cfg);
        grub_syntax_ok(cfg);

        assert_int_equal(count_matches(cfg, "^serial --unit=1 --speed=115200$"), 1);
        assert_int_equal(count_matches(cfg, "^terminal_input serial console$"), 1);
        assert_int_equal(count_matches(cfg, "^terminal_output serial console$"), 1);
        assert_int_equal(count_matches(cfg, "^set timeout=5$"), 1);
        /* three entries, each finding its partition by label and booting inside its image */
        assert_int_equal(count_matches(cfg, "^menuentry "), 3);
        assert_int_equal(count_matches(cfg, "^menuentry \"\\$\\{display_name\\}\" --id cos \\{$"), 1);
        assert_int_equal(count_matches(cfg, "^  search --no-floppy --label --set=root COS_STATE$"), 2);
        assert_int_equal(count_matches(cfg, "^  search --no-floppy --label --set=root COS_RECOVERY$"), 1);
        assert_int_equal(count_matches(cfg, "^  loopback loop0 /cOS/active.img$"), 1);
        assert_int_equal(count_matches(cfg, "^  loopback loop0 /cOS/passive.img$"), 1);
        assert_int_equal(count_matches(cfg, "^  loopback loop0 /cOS/recovery.img$"), 1);
        const char *tail = " panic=0 net.ifnames=1 rd.cos.oemtimeout=120 rd.cos.oemlabel=COS_OEM audit=1 "
                           "audit_backlog_limit=8192 intel_iommu=on amd_iommu=on iommu=pt rd.debug foo=\"a b\" multipath=off ";
        char want[1024], tail_i[512];
        const char *imgs[][2] = { { "COS_ACTIVE", "active" }, { "COS_PASSIVE", "passive" }, { "COS_SYSTEM", "recovery" } };
        for (size_t i = 0; i < ELEMENTSOF(imgs); i++) {
                snprintf(tail_i, sizeof tail_i, "%s${extra_cmdline} ${extra_%s_cmdline}\n", tail, imgs[i][1]);
                snprintf(want, sizeof want,
                         "  linux (loop0)/boot/vmlinuz console=ttyS1,115200n8 console=tty1 root=LABEL=%s "
                         "cos-img/filename=/cOS/%s.img%s",
                         imgs[i][0], imgs[i][1], tail_i);
                assert_non_null(strstr(cfg, want));
        }
        assert_int_equal(count_matches(cfg, "^  initrd \\(loop0\\)/boot/initrd$"), 3);
        /* the saved choice on COS_OEM */
        assert_non_null(strstr(cfg, "load_env -f \"(${oem_blk})/grubenv\""));
        assert_non_null(strstr(cfg, "set default=\"${saved_entry}\""));
        free(cfg);
        config_destroy(c);
}

static void test_grub_cfg_consoles(void **state) {
        struct config *c = config_new("join");
        char *cfg = NULL;

        /* no tty anywhere: tty1 only, no serial terminal, no extra arguments */
        assert_int_equal(install_render_grub_cfg(c, &cfg), 0);
        assert_int_equal(count_matches(cfg, "^  linux \\(loop0\\)/boot/vmlinuz console=tty1 root=LABEL="), 3);
        assert_int_equal(count_matches(cfg, "iommu=pt \\$\\{extra_cmdline\\} \\$\\{extra_[a-z]+_cmdline\\}$"), 3);
        assert_null(strstr(cfg, "serial"));
        grub_syntax_ok(cfg);
        free(cfg);

        /* tty1 given: the same */
        c->install.tty = xstrdup("tty1");
        assert_int_equal(install_render_grub_cfg(c, &cfg), 0);
        assert_int_equal(count_matches(cfg, " console=tty1 root=LABEL="), 3);
        assert_null(strstr(cfg, "serial"));
        free(cfg);

        /* no install.tty: the console the installer's kernel used (the last console=) */
        free(c->install.tty);
        c->install.tty = NULL;
        xpush(&c->boot.consoles, "tty1");
        xpush(&c->boot.consoles, "ttyS0,115200");
        assert_int_equal(install_render_grub_cfg(c, &cfg), 0);
        assert_int_equal(count_matches(cfg, " console=ttyS0,115200 console=tty1 root=LABEL="), 3);
        assert_int_equal(count_matches(cfg, "^serial --unit=0 --speed=115200$"), 1);
        free(cfg);

        /* /dev/ prefix, no speed */
        c->install.tty = xstrdup("/dev/ttyS2");
        assert_int_equal(install_render_grub_cfg(c, &cfg), 0);
        assert_int_equal(count_matches(cfg, " console=ttyS2 console=tty1 root=LABEL="), 3);
        assert_int_equal(count_matches(cfg, "^serial --unit=2 --speed=115200$"), 1);
        free(cfg);

        /* what GRUB's shell would interpret is refused */
        c->os.additional_kernel_arguments = xstrdup("quiet; reboot");
        cfg = NULL;
        assert_int_equal(install_render_grub_cfg(c, &cfg), -EINVAL);
        assert_null(cfg);
        free(c->os.additional_kernel_arguments);
        c->os.additional_kernel_arguments = xstrdup("init=$x");
        assert_int_equal(install_render_grub_cfg(c, &cfg), -EINVAL);
        free(c->os.additional_kernel_arguments);
        c->os.additional_kernel_arguments = NULL;
        free(c->install.tty);
        c->install.tty = xstrdup("ttyS0 quiet");
        assert_int_equal(install_render_grub_cfg(c, &cfg), -EINVAL);
        config_destroy(c);
}

static void test_write_grub(void **state) {
        char *tmp = tmpdir_new();
        char *iso = path_in(tmp, "iso"), *efi = path_in(tmp, "efi"), *st = path_in(tmp, "state");
        mkdirs(tmp, "iso/EFI/BOOT");
        mkdirs(tmp, "efi");
        mkdirs(tmp, "state");
        char *loader = path_in(iso, "EFI/BOOT/BOOTX64.EFI"), *grub_efi = path_in(iso, "EFI/BOOT/grub.efi");
        char *iso_cfg = path_in(iso, "EFI/BOOT/grub.cfg");
        write_bytes(loader, "MZ-loader\0\1\2", 12, 0);
        write_bytes(grub_efi, "MZ-grub", 7, 0);
        write_text(iso_cfg, "# the ISO's own menu\n");

        struct config *c = config_new("create");
        c->install.tty = xstrdup("ttyS0");
        assert_int_equal(install_write_grub(c, efi, st, loader, "Harvester v1.1.2"), 0);

        char *p = path_in(efi, "EFI/BOOT/BOOTX64.EFI");
        assert_true(files_equal(loader, p));
        free(p);
        p = path_in(efi, "EFI/BOOT/grub.efi");
        assert_true(files_equal(grub_efi, p));
        free(p);
        p = path_in(efi, "EFI/BOOT/grub.cfg");
        char *stub = read_text(p);
        grub_syntax_ok(stub);
        assert_string_equal(stub, "# Written by harvester-install-agent: the boot menu is on COS_STATE.\n"
                                  "search --no-floppy --label --set=root COS_STATE\n"
                                  "set prefix=($root)/grub2\n"
                                  "configfile ($root)/grub2/grub.cfg\n");
        free(stub);
        free(p);

        p = path_in(st, "grub2/grub.cfg");
        char *cfg = read_text(p), *want = NULL;
        assert_int_equal(install_render_grub_cfg(c, &want), 0);
        assert_string_equal(cfg, want);
        assert_int_equal(file_mode(p), 0644);
        free(cfg);
        free(want);
        free(p);

        p = path_in(st, "grub_oem_env");
        char *env = NULL;
        size_t len = 0;
        assert_int_equal(read_full_file(p, &env, &len), 0);
        assert_int_equal(len, 1024);
        const char *head = "# GRUB Environment Block\ndefault_menu_entry=Harvester v1.1.2\n###";
        assert_memory_equal(env, head, strlen(head));
        free(env);
        free(p);

        /* a missing loader is an error */
        char *missing = path_in(iso, "EFI/BOOT/none.efi");
        assert_true(install_write_grub(c, efi, st, missing, NULL) < 0);
        free(missing);

        config_destroy(c);
        free(loader);
        free(grub_efi);
        free(iso_cfg);
        free(iso);
        free(efi);
        free(st);
        tmpdir_remove(tmp);
}

/* ---------------------------------------------------------------------------------------------- */

static void check_sparse_copy(const char *src_dir, const char *dst_dir) {
        char *src = path_in(src_dir, "sparse.src"), *dst = path_in(dst_dir, "sparse.dst");
        const off_t size = 64 << 20;
        char block[8192];
        for (size_t i = 0; i < sizeof block; i++)
                block[i] = (char)(i * 7 + 3);
        unlink(src);
        write_bytes(src, block, sizeof block, 0);
        write_bytes(src, block, sizeof block, 32 << 20);
        write_bytes(src, block, 100, size - 100);

        assert_int_equal(install_copy_file(src, dst, 0640), 0);
        assert_true(files_equal(src, dst));
        struct stat st;
        assert_int_equal(stat(dst, &st), 0);
        assert_int_equal(st.st_size, size);
        assert_int_equal(st.st_mode & 0777, 0640);
        /* the holes stayed holes: far less than 64 MiB allocated */
        assert_true((uint64_t)st.st_blocks * 512 < (4u << 20));

        /* copying again over an existing file truncates it first */
        assert_int_equal(install_copy_file(src, dst, 0640), 0);
        assert_true(files_equal(src, dst));
        unlink(src);
        unlink(dst);
        free(src);
        free(dst);
}

static void test_copy_file(void **state) {
        char *tmp = tmpdir_new();
        check_sparse_copy(tmp, tmp);
        /* between file systems (disk to tmpfs) where that is possible here */
        char shm[] = "/dev/shm/test-install-XXXXXX";
        if (mkdtemp(shm)) {
                check_sparse_copy(tmp, shm);
                rmdir(shm);
        }
        /* a missing source: an error, no destination */
        char *src = path_in(tmp, "none"), *dst = path_in(tmp, "dst");
        assert_int_equal(install_copy_file(src, dst, 0644), -ENOENT);
        assert_int_equal(access(dst, F_OK), -1);
        free(src);
        free(dst);
        tmpdir_remove(tmp);
}

/* ---------------------------------------------------------------------------------------------- */

static char *probe_label(const char *img, const char **ret_type) {
        blkid_probe pr = blkid_new_probe_from_filename(img);
        assert_non_null(pr);
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_LABEL | BLKID_SUBLKS_TYPE);
        assert_int_equal(blkid_do_safeprobe(pr), 0);
        const char *v = NULL;
        assert_int_equal(blkid_probe_lookup_value(pr, "LABEL", &v, NULL), 0);
        char *label = xstrdup(v);
        assert_int_equal(blkid_probe_lookup_value(pr, "TYPE", &v, NULL), 0);
        *ret_type = streq(v, "ext2") ? "ext2" : "other";
        blkid_free_probe(pr);
        return label;
}

/* A file's contents inside an ext2 image, read with debugfs (no mount needed). */
static char *image_cat(const char *img, const char *path) {
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "debugfs -R 'cat %s' '%s' 2>/dev/null", path, img);
        FILE *f = popen(cmd, "r");
        assert_non_null(f);
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        pclose(f);
        return xstrdup(buf);
}

static void make_tree(const char *dir) {
        mkdirs(dir, "boot");
        mkdirs(dir, "etc/cos");
        mkdirs(dir, "usr/bin");
        char *p = path_in(dir, "boot/vmlinuz");
        write_text(p, "kernel image\n");
        free(p);
        p = path_in(dir, "boot/initrd");
        write_text(p, "initrd image\n");
        free(p);
        p = path_in(dir, "etc/hostname");
        write_text(p, "test-os\n");
        free(p);
        p = path_in(dir, "usr/bin/big");
        char big[65536];
        memset(big, 'b', sizeof big);
        write_bytes(p, big, sizeof big, 0);
        free(p);
        p = path_in(dir, "etc/os-release.link");
        assert_int_equal(symlink("hostname", p), 0);
        free(p);
}

static void test_make_images(void **state) {
        char *tmp = tmpdir_new();
        char *tree = path_in(tmp, "tree"), *st = path_in(tmp, "state"), *rec = path_in(tmp, "recovery");
        make_tree(tmp);
        mkdirs(tmp, "tree");
        char cmd[8400];
        snprintf(cmd, sizeof cmd, "cd '%s' && mv boot etc usr '%s'/", tmp, tree);
        assert_int_equal(system(cmd), 0);
        mkdirs(tmp, "state");
        mkdirs(tmp, "recovery");

        assert_int_equal(install_make_images(tree, st, rec, 16), 0);

        const char *imgs[][2] = { { "state/cOS/active.img", "COS_ACTIVE" },
                                  { "state/cOS/passive.img", "COS_PASSIVE" },
                                  { "recovery/cOS/recovery.img", "COS_SYSTEM" } };
        for (size_t i = 0; i < ELEMENTSOF(imgs); i++) {
                char *img = path_in(tmp, imgs[i][0]);
                struct stat s;
                assert_int_equal(stat(img, &s), 0);
                assert_int_equal(s.st_size, 16 << 20);
                const char *type = NULL;
                char *label = probe_label(img, &type);
                assert_string_equal(label, imgs[i][1]);
                assert_string_equal(type, "ext2");
                free(label);
                char *k = image_cat(img, "/boot/vmlinuz"), *h = image_cat(img, "/etc/hostname");
                assert_string_equal(k, "kernel image\n");
                assert_string_equal(h, "test-os\n");
                free(k);
                free(h);
                char *big = image_cat(img, "/usr/bin/big");
                assert_int_equal(strlen(big), 4095); /* image_cat reads the first 4095 bytes */
                assert_int_equal(big[0], 'b');
                free(big);
                free(img);
        }
        /* the copies are sparse like the original */
        char *passive = path_in(tmp, "state/cOS/passive.img");
        struct stat s;
        assert_int_equal(stat(passive, &s), 0);
        assert_true((uint64_t)s.st_blocks * 512 < (16u << 20));
        free(passive);

        /* a missing tree fails and leaves no image behind */
        char *none = path_in(tmp, "none"), *st2 = path_in(tmp, "state2");
        mkdirs(tmp, "state2");
        assert_true(install_make_images(none, st2, rec, 16) < 0);
        char *img = path_in(st2, "cOS/active.img");
        assert_int_equal(access(img, F_OK), -1);
        free(img);
        free(none);
        free(st2);

        free(tree);
        free(st);
        free(rec);
        tmpdir_remove(tmp);
}

/* ---------------------------------------------------------------------------------------------- */

static void test_preload_images(void **state) {
        /* Without root: the rancherd bundle is copied; the Harvester bundle's import is in
         * test-preload-root.c. */
        char *tmp = tmpdir_new();
        char *iso = path_in(tmp, "iso"), *pers = path_in(tmp, "persistent"), *st = path_in(tmp, "state");
        mkdirs(tmp, "iso/bundle/rancherd/images");
        mkdirs(tmp, "persistent");
        mkdirs(tmp, "state");
        char *a = path_in(iso, "bundle/rancherd/images/rancherd-bootstrap-images-v1.1.2.tar.zst");
        write_text(a, "rancherd images\n");

        assert_int_equal(install_preload_images(iso, st, pers, "/nonexistent-target"), 0);
        char *a2 = path_in(pers, ".state/var-lib-rancher.bind/agent/images/rancherd-bootstrap-images-v1.1.2.tar.zst");
        assert_true(files_equal(a, a2));
        char *rke2_images = path_in(pers, ".state/var-lib-rancher.bind/rke2/agent/images");
        assert_int_equal(access(rke2_images, F_OK), -1); /* no Harvester bundle: nothing there */
        free(rke2_images);
        free(a2);

        /* an ISO without bundles: nothing to do */
        char *empty = path_in(tmp, "empty");
        mkdirs(tmp, "empty");
        assert_int_equal(install_preload_images(empty, st, pers, "/nonexistent-target"), 0);
        free(empty);
        free(a);
        free(iso);
        free(pers);
        free(st);
        tmpdir_remove(tmp);
}

static void test_copy_log(void **state) {
        char *tmp = tmpdir_new();
        char *log = path_in(tmp, "capture.log"), *oem = path_in(tmp, "oem");
        mkdirs(tmp, "oem");
        write_text(log, "line one\nthe token is S3cr3tT0ken here\nlast line\n");
        log_add_secret("S3cr3tT0ken");

        assert_int_equal(install_copy_log(log, oem), 0);
        char *dst = path_in(oem, "install/console.log"), *dir = path_in(oem, "install");
        assert_int_equal(file_mode(dst), 0600);
        assert_int_equal(file_mode(dir), 0700);
        char *text = read_text(dst);
        assert_string_equal(text, "line one\nthe token is <redacted> here\nlast line\n");
        free(text);
        log_forget_secrets();

        /* no log: an error */
        char *none = path_in(tmp, "none.log");
        assert_int_equal(install_copy_log(none, oem), -ENOENT);
        free(none);
        free(dst);
        free(dir);
        free(log);
        free(oem);
        tmpdir_remove(tmp);
}

int main(void) {
        log_set_max_level(LOG_LEVEL_ERROR);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_grub_cfg_serial),
                cmocka_unit_test(test_grub_cfg_consoles),
                cmocka_unit_test(test_write_grub),
                cmocka_unit_test(test_copy_file),
                cmocka_unit_test(test_make_images),
                cmocka_unit_test(test_preload_images),
                cmocka_unit_test(test_copy_log),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
