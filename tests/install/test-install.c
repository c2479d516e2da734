/* SPDX-License-Identifier: Apache-2.0 */
/* The install steps over directories: the image's grub.cfg and bootargs.cfg as a v1.1.2 install
 * patches them (harv-install's sed as the oracle), COS_STATE's boot files, state.yaml, grubenv, the
 * loader on the ESP and its commit order, kernel-side sparse copies, OS images from a tree (mke2fs -d, tune2fs), image
 * bundles, the saved log. No root needed. */
#include <blkid.h>
#include <regex.h>

#include "helpers.h"

#include "install.h"
#include "iso.h"
#include "log.h"

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

/* The release's image files (qemu/release/cos/), shaped like v1.1.2's. */
static char *release_file(const char *name) {
        const char *src = getenv("TESTS_SOURCE_DIR");
        assert_non_null(src);
        char *p = strdup_printf("%s/../qemu/release/cos/%s", src, name);
        assert_non_null(p);
        char *text = read_text(p);
        free(p);
        return text;
}

/* harv-install's own sed expressions over text: the oracle for install_patch_grub_cfg. */
static char *sed_patch(const char *text) {
        char *tmp = tmpdir_new(), *f = path_in(tmp, "grub.cfg"), cmd[4600];
        write_text(f, text);
        snprintf(cmd, sizeof cmd,
                 "sed -i 's/search /search --no-floppy /' '%1$s' && "
                 "sed -i 's/search.fs_label /search --no-floppy --label /' '%1$s' && "
                 "sed -i 's/search.file /search --no-floppy --file /' '%1$s' && "
                 "sed -i 's/search.fs_uuid /search --no-floppy --fs-uuid /' '%1$s' && "
                 "sed -i -E 's/^(\\s*search\\b)(.*)root$/\\1 --set=root\\2/' '%1$s'",
                 f);
        assert_int_equal(system(cmd), 0);
        char *out = read_text(f);
        free(f);
        tmpdir_remove(tmp);
        return out;
}

static void test_patch_grub_cfg(void **state) {
        char *image = release_file("grub.cfg"), *cfg = NULL;
        /* the release's file as a v1.1.2 install leaves it: harv-install's sed, byte for byte */
        assert_int_equal(install_patch_grub_cfg(image, NULL, &cfg), 0);
        char *want = sed_patch(image);
        assert_string_equal(cfg, want);
        grub_syntax_ok(cfg);
        assert_int_equal(count_matches(cfg, "^  search --no-floppy --no-floppy --label --set=root COS_STATE$"), 2);
        free(cfg);
        free(want);
        free(image);

        /* the other search forms, and lines ending in "root" */
        const char *forms = "search.fs_label COS_STATE root\n"
                            "  search.file /cOS/active.img root\n"
                            "\tsearch.fs_uuid 1234 root\n"
                            "searching root\n"
                            "search --label COS_OEM --set oem\n"
                            "echo search root";
        assert_int_equal(install_patch_grub_cfg(forms, NULL, &cfg), 0);
        want = sed_patch(forms);
        assert_string_equal(cfg, want);
        assert_non_null(strstr(cfg, "search --set=root --no-floppy --label COS_STATE \n"));
        free(cfg);
        free(want);

        /* elemental's console edit: every console=tty1 gets the tty after it */
        assert_int_equal(install_patch_grub_cfg("linux /vmlinuz console=tty1 quiet\nx console=tty1\n", "ttyS0,115200", &cfg), 0);
        assert_string_equal(cfg, "linux /vmlinuz console=tty1 console=ttyS0,115200 quiet\nx console=tty1 console=ttyS0,115200\n");
        free(cfg);
}

static void test_patch_bootargs(void **state) {
        char *image = release_file("bootargs.cfg"), *out = NULL;
        assert_int_equal(install_patch_bootargs(image, "ttyS1,115200n8", &out), 0);
        assert_int_equal(count_matches(out, "^set console_params=\"console=ttyS1,115200n8 console=tty1\"$"), 1);
        assert_int_equal(count_matches(out, "console=tty1\"$"), 1);
        /* nothing else changes */
        char *back = NULL;
        assert_int_equal(install_patch_bootargs(image, NULL, &back), 0);
        assert_string_equal(back, image);
        assert_int_equal(strlen(out), strlen(image) + strlen("console=ttyS1,115200n8 "));
        free(back);
        free(out);
        grub_syntax_ok(image);
        free(image);
        /* an image without the line */
        assert_int_equal(install_patch_bootargs("set kernel=/boot/vmlinuz\n", "ttyS0", &out), -ENOENT);
}

static void test_console(void **state) {
        struct config *c = config_new("create");
        const char *tty = "x";
        assert_int_equal(install_console(c, &tty), 0);
        assert_null(tty);
        c->install.tty = xstrdup("tty1");
        assert_int_equal(install_console(c, &tty), 0);
        assert_null(tty);
        free(c->install.tty);
        c->install.tty = xstrdup("/dev/ttyS2");
        assert_int_equal(install_console(c, &tty), 0);
        assert_string_equal(tty, "ttyS2");
        /* no install.tty: the console the installer's kernel used (the last console=) */
        free(c->install.tty);
        c->install.tty = NULL;
        xpush(&c->boot.consoles, "tty1");
        xpush(&c->boot.consoles, "ttyS0,115200");
        assert_int_equal(install_console(c, &tty), 0);
        assert_string_equal(tty, "ttyS0,115200");
        c->install.tty = xstrdup("ttyS0 quiet");
        assert_int_equal(install_console(c, &tty), -EINVAL);
        config_destroy(c);
}

/* A directory shaped like the image: the release's cos files, EFI binaries, modules. */
static char *fake_rootfs(const char *tmp) {
        char *root = path_in(tmp, "rootfs");
        mkdirs(tmp, "rootfs/etc/cos");
        mkdirs(tmp, "rootfs/" IMAGE_EFI_DIR);
        mkdirs(tmp, "rootfs/" IMAGE_GRUB_MODULE_DIR);
        char *g = release_file("grub.cfg"), *b = release_file("bootargs.cfg");
        char *p = path_in(root, IMAGE_GRUB_CFG);
        write_text(p, g);
        free(p);
        p = path_in(root, IMAGE_BOOTARGS_CFG);
        write_text(p, b);
        free(p);
        free(g);
        free(b);
        for (size_t i = 0; install_efi_files[i]; i++) {
                char *rel = strdup_printf("%s/%s", IMAGE_EFI_DIR, install_efi_files[i]), data[64];
                p = path_in(root, rel);
                snprintf(data, sizeof data, "MZ-%s", install_efi_files[i]);
                write_text(p, data);
                free(p);
                free(rel);
        }
        for (size_t i = 0; install_grub_modules[i]; i++) {
                char *rel = strdup_printf("%s/%s", IMAGE_GRUB_MODULE_DIR, install_grub_modules[i]);
                p = path_in(root, rel);
                write_text(p, install_grub_modules[i]);
                free(p);
                free(rel);
        }
        return root;
}

static void test_write_state_boot(void **state) {
        char *tmp = tmpdir_new(), *root = fake_rootfs(tmp), *st = path_in(tmp, "state");
        mkdirs(tmp, "state");
        assert_int_equal(install_write_state_boot(root, st, "ttyS0", "Harvester v1.1.2"), 0);

        char *p = path_in(st, "grub2/grub.cfg"), *cfg = read_text(p), *image = release_file("grub.cfg"), *want = NULL;
        assert_int_equal(install_patch_grub_cfg(image, "ttyS0", &want), 0);
        assert_string_equal(cfg, want);
        assert_int_equal(file_mode(p), 0644);
        free(p);
        free(cfg);
        free(want);
        free(image);
        for (size_t i = 0; install_grub_modules[i]; i++) {
                char *rel = strdup_printf("grub2/x86_64-efi/%s", install_grub_modules[i]);
                p = path_in(st, rel);
                char *m = read_text(p);
                assert_string_equal(m, install_grub_modules[i]);
                free(m);
                free(p);
                free(rel);
        }
        p = path_in(st, "grub_oem_env");
        char *env = NULL;
        size_t len = 0;
        assert_int_equal(read_full_file(p, &env, &len), 0);
        assert_int_equal(len, 1024);
        const char *head = "# GRUB Environment Block\ndefault_menu_entry=Harvester v1.1.2\n###";
        assert_memory_equal(env, head, strlen(head));
        free(env);
        free(p);
        p = path_in(st, "grubmenu");
        char *menu = read_text(p);
        grub_syntax_ok(menu);
        assert_int_equal(count_matches(menu, "^menuentry \"\\$\\{display_name\\} \\(debug\\)\" --id debug \\{$"), 1);
        assert_int_equal(count_matches(menu, "^  linux \\(loop0\\)\\$kernel \\$kernelcmd \\$\\{extra_cmdline\\} "
                                             "\\$\\{extra_passive_cmdline\\} \\$\\{crash_kernel_params\\}$"), 1);
        free(menu);
        free(p);

        /* an image without a module: an error naming it */
        p = path_in(root, IMAGE_GRUB_MODULE_DIR "/xzio.mod");
        assert_int_equal(unlink(p), 0);
        free(p);
        assert_int_equal(install_write_state_boot(root, st, NULL, NULL), -ENOENT);
        free(root);
        free(st);
        tmpdir_remove(tmp);
}

static void test_state_yaml(void **state) {
        char *text = NULL;
        assert_int_equal(install_render_state_yaml("/run/harvester-install/mnt/rootfs", 1700000000, &text), 0);
        assert_string_equal(text, "# Autogenerated file by elemental client, do not edit\n"
                                  "\n"
                                  "date: \"2023-11-14T22:13:20Z\"\n"
                                  "oem:\n"
                                  "    label: COS_OEM\n"
                                  "persistent:\n"
                                  "    label: COS_PERSISTENT\n"
                                  "recovery:\n"
                                  "    label: COS_RECOVERY\n"
                                  "    recovery:\n"
                                  "        source: dir:///run/harvester-install/mnt/rootfs\n"
                                  "        label: COS_SYSTEM\n"
                                  "        fs: ext2\n"
                                  "state:\n"
                                  "    label: COS_STATE\n"
                                  "    active:\n"
                                  "        source: dir:///run/harvester-install/mnt/rootfs\n"
                                  "        label: COS_ACTIVE\n"
                                  "        fs: ext2\n"
                                  "    passive:\n"
                                  "        source: dir:///run/harvester-install/mnt/rootfs\n"
                                  "        label: COS_PASSIVE\n"
                                  "        fs: ext2\n");
        /* it is YAML */
        struct ydoc *d = ydoc_parse(text);
        assert_string_equal(ystr(d, NULL, "state.active.label"), "COS_ACTIVE");
        assert_string_equal(ystr(d, NULL, "recovery.recovery.label"), "COS_SYSTEM");
        ydoc_free(d);
        free(text);

        char *tmp = tmpdir_new(), *st = path_in(tmp, "state"), *rec = path_in(tmp, "recovery");
        mkdirs(tmp, "state");
        mkdirs(tmp, "recovery");
        assert_int_equal(install_write_state_yaml("/src", st, rec), 0);
        char *a = path_in(st, "state.yaml"), *b = path_in(rec, "state.yaml");
        assert_true(files_equal(a, b));
        free(a);
        free(b);
        free(st);
        free(rec);
        tmpdir_remove(tmp);
}

static void test_grubenv(void **state) {
        char *tmp = tmpdir_new();
        struct config *c = config_new("create");
        c->os.additional_kernel_arguments = xstrdup("rd.debug foo=\"a b\" multipath=off");
        assert_int_equal(install_write_grubenv(c, tmp), 0);
        char *p = path_in(tmp, "grubenv"), *env = NULL;
        size_t len = 0;
        assert_int_equal(read_full_file(p, &env, &len), 0);
        assert_int_equal(len, 1024);
        const char *head = "# GRUB Environment Block\nextra_cmdline=rd.debug foo=\"a b\" multipath=off\n###";
        assert_memory_equal(env, head, strlen(head));
        free(env);
        /* none: an empty block */
        free(c->os.additional_kernel_arguments);
        c->os.additional_kernel_arguments = NULL;
        assert_int_equal(install_write_grubenv(c, tmp), 0);
        assert_int_equal(read_full_file(p, &env, &len), 0);
        assert_memory_equal(env, "# GRUB Environment Block\n###", 27);
        free(env);
        /* what GRUB would interpret */
        c->os.additional_kernel_arguments = xstrdup("a=$x");
        assert_int_equal(install_write_grubenv(c, tmp), -EINVAL);
        free(p);
        config_destroy(c);
        tmpdir_remove(tmp);
}

/* The iso stage's check of the mounted image (os_image_check): every file the install reads. */
static void test_os_image_check(void **state) {
        char *tmp = tmpdir_new(), *root = fake_rootfs(tmp), *iso = path_in(tmp, "iso");
        mkdirs(tmp, "iso");
        mkdirs(tmp, "rootfs/boot");
        const char *more[] = { "boot/vmlinuz", "boot/initrd", "etc/harvester-release.yaml" };
        for (size_t i = 0; i < ELEMENTSOF(more); i++) {
                char *p = path_in(root, more[i]);
                write_text(p, "x\n");
                free(p);
        }
        assert_int_equal(os_image_check(iso, root), 0);

        /* each file the install reads is checked: removing any one fails, naming it */
        const char *each[] = { "boot/vmlinuz", "boot/initrd", "etc/harvester-release.yaml", IMAGE_GRUB_CFG,
                               IMAGE_BOOTARGS_CFG, IMAGE_EFI_DIR "/shim.efi", IMAGE_EFI_DIR "/grub.efi",
                               IMAGE_EFI_DIR "/MokManager.efi", IMAGE_GRUB_MODULE_DIR "/loopback.mod",
                               IMAGE_GRUB_MODULE_DIR "/squash4.mod", IMAGE_GRUB_MODULE_DIR "/xzio.mod" };
        for (size_t i = 0; i < ELEMENTSOF(each); i++) {
                char *p = path_in(root, each[i]), *kept = strdup_printf("%s.kept", p);
                assert_int_equal(rename(p, kept), 0);
                assert_int_equal(os_image_check(iso, root), -ENOENT);
                assert_non_null(log_last_error());
                assert_non_null(strstr(log_last_error(), each[i]));
                assert_int_equal(rename(kept, p), 0);
                free(kept);
                free(p);
        }
        /* a link out of the image counts as missing */
        char *mod = path_in(root, IMAGE_GRUB_MODULE_DIR "/xzio.mod");
        assert_int_equal(unlink(mod), 0);
        assert_int_equal(symlink("/etc/hostname", mod), 0);
        assert_int_equal(os_image_check(iso, root), -ENOENT);
        assert_int_equal(unlink(mod), 0);
        write_text(mod, "xzio");
        /* bootargs.cfg without the console line */
        char *b = path_in(root, IMAGE_BOOTARGS_CFG);
        write_text(b, "set kernel=/boot/vmlinuz\n");
        assert_int_equal(os_image_check(iso, root), -ENOENT);
        assert_non_null(strstr(log_last_error(), "console_params"));
        char *orig = release_file("bootargs.cfg");
        write_text(b, orig);
        /* an image bundle that is not a directory */
        mkdirs(tmp, "iso/bundle/harvester");
        char *bundle = path_in(iso, "bundle/harvester/images");
        write_text(bundle, "not a directory");
        assert_int_equal(os_image_check(iso, root), -ENOTDIR);
        unlink(bundle);
        mkdirs(tmp, "iso/bundle/harvester/images");
        assert_int_equal(os_image_check(iso, root), 0);
        free(bundle);
        free(orig);
        free(b);
        free(mod);
        free(iso);
        free(root);
        tmpdir_remove(tmp);
}

/* On a legacy BIOS machine (the fake root without sys/firmware/efi) the image's GRUB for i386-pc is
 * checked too: Debian's layout or SLE's, each file named when missing; on UEFI it is not needed. */
static void test_os_image_check_bios(void **state) {
        char *tmp = tmpdir_new(), *root = fake_rootfs(tmp), *iso = path_in(tmp, "iso");
        const char *uefi = getenv("HARVESTER_INSTALL_FACTS_ROOT");
        char *uefi_root = xstrdup(uefi), *bios_root = strdup_printf("%s/fixtures/firmware-bios", getenv("TESTS_SOURCE_DIR"));
        mkdirs(tmp, "iso");
        mkdirs(tmp, "rootfs/boot");
        const char *more[] = { "boot/vmlinuz", "boot/initrd", "etc/harvester-release.yaml" };
        for (size_t i = 0; i < ELEMENTSOF(more); i++) {
                char *p = path_in(root, more[i]);
                write_text(p, "x\n");
                free(p);
        }
        assert_int_equal(os_image_check(iso, root), 0); /* UEFI: no GRUB for i386-pc needed */
        assert_int_equal(setenv("HARVESTER_INSTALL_FACTS_ROOT", bios_root, 1), 0);
        assert_int_equal(os_image_check(iso, root), -ENOENT);
        assert_non_null(strstr(log_last_error(), "usr/sbin/grub2-install or usr/sbin/grub-install (GRUB for legacy BIOS)"));

        /* Debian's layout (the test release): the tool, then each file under usr/lib/grub/i386-pc */
        mkdirs(root, "usr/sbin");
        mkdirs(root, "usr/lib/grub/i386-pc");
        char *tool = path_in(root, "usr/sbin/grub-install");
        write_text(tool, "#!/bin/sh\n");
        assert_int_equal(os_image_check(iso, root), -ENOENT);
        assert_non_null(strstr(log_last_error(), "usr/lib/grub/i386-pc/boot.img"));
        for (size_t i = 0; install_bios_grub_files[i]; i++) {
                char *rel = strdup_printf("usr/lib/grub/i386-pc/%s", install_bios_grub_files[i]), *p = path_in(root, rel);
                write_text(p, "module\n");
                if (install_bios_grub_files[i + 1]) {
                        assert_int_equal(os_image_check(iso, root), -ENOENT);
                        assert_null(strstr(log_last_error(), rel));
                }
                free(rel);
                free(p);
        }
        assert_int_equal(os_image_check(iso, root), 0);
        assert_ptr_equal(install_bios_grub_find(root, NULL), &install_bios_grubs[1]);
        assert_int_equal(setenv("HARVESTER_INSTALL_FACTS_ROOT", uefi_root, 1), 0);
        free(tool);
        free(uefi_root);
        free(bios_root);
        free(iso);
        free(root);
        tmpdir_remove(tmp);
}

/* rename(2) calls of install_write_loader, in order (-Wl,--wrap=rename). */
static char renamed[16][64];
static size_t n_renamed;
int __real_rename(const char *a, const char *b);
int __wrap_rename(const char *a, const char *b);
int __wrap_rename(const char *a, const char *b) {
        if (n_renamed < ELEMENTSOF(renamed)) {
                const char *efi = strstr(b, "/efi/");
                snprintf(renamed[n_renamed++], sizeof renamed[0], "%s", efi ? efi + 5 : b);
        }
        return __real_rename(a, b);
}

static void test_write_loader(void **state) {
        char *tmp = tmpdir_new(), *root = fake_rootfs(tmp), *efi = path_in(tmp, "efi");
        mkdirs(tmp, "efi");
        n_renamed = 0;
        assert_int_equal(install_write_loader(root, efi), 0);
        size_t n = n_renamed;

        char *shim = path_in(root, IMAGE_EFI_DIR "/shim.efi");
        const char *same_as_shim[] = { "EFI/BOOT/BOOTX64.EFI", "EFI/BOOT/shim.efi", "EFI/elemental/shim.efi" };
        for (size_t i = 0; i < ELEMENTSOF(same_as_shim); i++) {
                char *p = path_in(efi, same_as_shim[i]);
                assert_true(files_equal(shim, p));
                free(p);
        }
        const char *dirs[] = { "EFI/BOOT", "EFI/elemental" };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                for (size_t k = 1; install_efi_files[k]; k++) {
                        char *rel = strdup_printf("%s/%s", dirs[i], install_efi_files[k]);
                        char *src = strdup_printf("%s/%s/%s", root, IMAGE_EFI_DIR, install_efi_files[k]);
                        char *p = path_in(efi, rel);
                        assert_true(files_equal(src, p));
                        free(p);
                        free(src);
                        free(rel);
                }
                char *rel = strdup_printf("%s/grub.cfg", dirs[i]), *p = path_in(efi, rel), *stub = read_text(p);
                assert_string_equal(stub, "search --no-floppy --label --set=root COS_STATE\n"
                                          "set prefix=($root)/grub2\n"
                                          "configfile ($root)/grub2/grub.cfg");
                grub_syntax_ok(stub);
                free(stub);
                free(p);
                free(rel);
        }
        /* the commit point: the entry's shim, then BOOTX64.EFI, renamed into place last */
        assert_int_equal(n, 9);
        assert_string_equal(renamed[n - 2], "EFI/elemental/shim.efi");
        assert_string_equal(renamed[n - 1], "EFI/BOOT/BOOTX64.EFI");
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "find '%s' -name '*.new' | grep -q .", efi);
        assert_int_not_equal(system(cmd), 0);

        /* an image without MokManager.efi: nothing the firmware boots is written */
        char *efi2 = path_in(tmp, "efi2"), *mok = path_in(root, IMAGE_EFI_DIR "/MokManager.efi");
        mkdirs(tmp, "efi2");
        assert_int_equal(unlink(mok), 0);
        assert_int_equal(install_write_loader(root, efi2), -ENOENT);
        char *boot = path_in(efi2, "EFI/BOOT/BOOTX64.EFI"), *entry = path_in(efi2, "EFI/elemental/shim.efi");
        assert_int_equal(access(boot, F_OK), -1);
        assert_int_equal(access(entry, F_OK), -1);
        free(boot);
        free(entry);
        free(mok);
        free(efi2);
        free(shim);
        free(root);
        free(efi);
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
                cmocka_unit_test(test_patch_grub_cfg),
                cmocka_unit_test(test_patch_bootargs),
                cmocka_unit_test(test_console),
                cmocka_unit_test(test_write_state_boot),
                cmocka_unit_test(test_state_yaml),
                cmocka_unit_test(test_grubenv),
                cmocka_unit_test(test_write_loader),
                cmocka_unit_test(test_os_image_check),
                cmocka_unit_test(test_os_image_check_bios),
                cmocka_unit_test(test_copy_file),
                cmocka_unit_test(test_make_images),
                cmocka_unit_test(test_preload_images),
                cmocka_unit_test(test_copy_log),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
