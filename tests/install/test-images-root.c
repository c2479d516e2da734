/* SPDX-License-Identifier: Apache-2.0 */
/* The OS images as install_system makes them: a squashfs (as in the ISO) loop-mounted read-only
 * with libmount, active/passive/recovery images made from the mounted tree, labels checked with
 * blkid, active.img loop-mounted and its contents, modes, owners and symlinks compared, loop
 * devices freed on unmount. Root only: exit 77 without root, loop devices, ext2 or squashfs. */
#include <sys/sysmacros.h>

#include "helpers.h"

#include "install.h"
#include "log.h"

static char *tmp;

static bool fs_supported(const char *name) {
        char *text = NULL;
        if (read_full_file("/proc/filesystems", &text, NULL) < 0)
                return false;
        char pat[64];
        snprintf(pat, sizeof pat, "\t%s\n", name);
        bool ok = strstr(text, pat) != NULL;
        free(text);
        return ok;
}

static int skip_reason(void) {
        if (geteuid() != 0)
                return fprintf(stderr, "SKIP: not root\n"), 77;
        if (access("/dev/loop-control", F_OK) < 0)
                return fprintf(stderr, "SKIP: no /dev/loop-control\n"), 77;
        /* A module not loaded yet is not missing: mount(2) would load it, so load it first. */
        if (!fs_supported("squashfs") || !fs_supported("ext2"))
                (void)system("modprobe -q squashfs; modprobe -q ext4; modprobe -q ext2");
        if (!fs_supported("squashfs") || !fs_supported("ext2"))
                return fprintf(stderr, "SKIP: the kernel lacks squashfs or ext2\n"), 77;
        if (system("command -v mksquashfs >/dev/null 2>&1") != 0)
                return fprintf(stderr, "SKIP: mksquashfs missing (Debian package squashfs-tools)\n"), 77;
        return 0;
}

static char *capture(const char *fmt, ...) _printf_(1, 2);
static char *capture(const char *fmt, ...) {
        char cmd[8192], buf[4096];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        FILE *f = popen(cmd, "r");
        assert_non_null(f);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        pclose(f);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = 0;
        return xstrdup(buf);
}

/* Loop devices backed by a file under dir (to prove they are freed). The kernel frees an
 * autoclear loop device asynchronously after its last close: a count other than want is read
 * again for up to 10 s before it is believed. */
static int loops_on(const char *dir, int want) {
        int n = 0;
        for (int tries = 0; tries < 100; tries++) {
                char *s = capture("losetup --list --noheadings --output BACK-FILE 2>/dev/null | grep -c '^%s/' || true", dir);
                n = atoi(s);
                free(s);
                if (n == want)
                        break;
                usleep(100 * 1000);
        }
        return n;
}

static void test_images_from_squashfs(void **state) {
        char *tree = path_in(tmp, "tree"), *sq = path_in(tmp, "rootfs.squashfs"), *mnt = path_in(tmp, "rootfs");
        char *st = path_in(tmp, "state"), *rec = path_in(tmp, "recovery"), *check = path_in(tmp, "check");

        /* A root tree with what the test OS needs, special modes, an owner, a symlink, a hard link. */
        sh("mkdir -p '%s/boot' '%s/etc' '%s/usr/bin' '%s/var/empty' '%s' '%s'", tree, tree, tree, tree, st, rec);
        sh("printf 'kernel\\n' > '%s/boot/vmlinuz' && printf 'initrd\\n' > '%s/boot/initrd'", tree, tree);
        sh("printf 'test-os\\n' > '%s/etc/hostname' && chmod 0600 '%s/etc/hostname'", tree, tree);
        sh("printf '#!/bin/sh\\necho hi\\n' > '%s/usr/bin/hi' && chmod 4755 '%s/usr/bin/hi' && chown 1000:100 '%s/usr/bin/hi'",
           tree, tree, tree);
        sh("ln -s ../boot/vmlinuz '%s/etc/kernel' && ln '%s/boot/initrd' '%s/boot/initrd.hard'", tree, tree, tree);
        sh("head -c 3000000 /dev/urandom > '%s/usr/bin/blob'", tree);
        sh("mksquashfs '%s' '%s' -noappend -quiet -no-progress >/dev/null", tree, sq);

        /* As install_system mounts rootfs.squashfs: read-only, on a loop device libmount sets up. */
        assert_int_equal(install_mount(sq, mnt, "squashfs", "loop,ro"), 0);
        assert_int_equal(loops_on(tmp, 1), 1);
        assert_int_equal(install_make_images(mnt, st, rec, 32), 0);
        assert_int_equal(install_umount(mnt), 0);
        assert_int_equal(loops_on(tmp, 0), 0);

        const char *imgs[][3] = { { "cOS/active.img", "COS_ACTIVE", "state" },
                                  { "cOS/passive.img", "COS_PASSIVE", "state" },
                                  { "cOS/recovery.img", "COS_SYSTEM", "recovery" } };
        for (size_t i = 0; i < ELEMENTSOF(imgs); i++) {
                char *dir = path_in(tmp, imgs[i][2]);
                char *img = path_in(dir, imgs[i][0]);
                char *label = capture("blkid -p -o value -s LABEL '%s'", img);
                char *type = capture("blkid -p -o value -s TYPE '%s'", img);
                assert_string_equal(label, imgs[i][1]);
                assert_string_equal(type, "ext2");
                free(label);
                free(type);

                /* Its contents equal the squashfs tree: data, modes, owners, links. */
                assert_int_equal(install_mount(img, check, "ext2", "loop,ro"), 0);
                sh("diff -r --no-dereference -x lost+found '%s' '%s'", tree, check);
                char *a = capture("cd '%s' && find . -printf '%%p %%m %%u:%%g %%y %%l\\n' | sort", tree);
                char *b = capture("cd '%s' && find . ! -path './lost+found*' -printf '%%p %%m %%u:%%g %%y %%l\\n' | sort", check);
                assert_string_equal(a, b);
                free(a);
                free(b);
                char *links = capture("stat -c %%h '%s/boot/initrd'", check);
                assert_string_equal(links, "2");
                free(links);
                assert_int_equal(install_umount(check), 0);
                assert_int_equal(loops_on(tmp, 0), 0);
                free(img);
                free(dir);
        }

        free(tree);
        free(sq);
        free(mnt);
        free(st);
        free(rec);
        free(check);
}

static void test_mount_errors(void **state) {
        char *mnt = path_in(tmp, "bad"), *none = path_in(tmp, "no-such.img"), *junk = path_in(tmp, "junk.img");
        /* a missing source and a file that is no squashfs: errors, and no loop device left behind */
        assert_true(install_mount(none, mnt, "squashfs", "loop,ro") < 0);
        sh("head -c 1048576 /dev/zero > '%s'", junk);
        assert_true(install_mount(junk, mnt, "squashfs", "loop,ro") < 0);
        assert_int_equal(loops_on(tmp, 0), 0);
        /* unmounting what is not mounted is an error */
        assert_true(install_umount(mnt) < 0);
        free(mnt);
        free(none);
        free(junk);
}

static int setup(void **state) {
        tmp = tmpdir_new();
        return 0;
}

static int teardown(void **state) {
        sh("for m in $(grep -o ' %s/[^ ]*' /proc/self/mounts | tac); do umount \"$m\"; done; true", tmp);
        tmpdir_remove(tmp);
        return 0;
}

int main(void) {
        int r = skip_reason();
        if (r)
                return r;
        log_set_max_level(LOG_LEVEL_ERROR);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_images_from_squashfs),
                cmocka_unit_test(test_mount_errors),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
