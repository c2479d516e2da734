/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The image preload's contract (root): install_preload_images() on an ISO tree with a Harvester
 * bundle and an active.img (ext2, mke2fs -d) holding a busybox system and the test release's fake
 * wharfie / rke2 / ctr / ctr-check-images.sh (qemu/release/preload/), which record how they are
 * run. Checked: the programs, their arguments, PATH and CONTAINERD_ADDRESS, that they ran inside
 * the chroot with the bundle bound where rke2 imports from, every image "imported", the rancherd
 * bundle copied, no tarball on COS_PERSISTENT, the temporary server's leftovers removed, no process
 * and no mount left. preload_check() on ISOs and images that lack a part. Exit 77 without root,
 * loop devices or a static busybox.
 */
#include <dirent.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "helpers.h"

#include "format.h"
#include "install.h"
#include "preload.h"

static char *tmp;

static void mkdir_all(const char *path) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = 0;
                        (void)mkdir(buf, 0755);
                        *p = '/';
                }
        (void)mkdir(buf, 0755);
}

static void put(const char *root, const char *rel, const char *text, mode_t mode) {
        char *p = path_in(root, rel);
        char *dir = strdup(p);
        *strrchr(dir, '/') = 0;
        mkdir_all(dir);
        assert_int_equal(write_file_atomic(p, text, strlen(text), mode), 0);
        free(dir);
        free(p);
}

static void run_ok(char **argv) {
        _cleanup_free_ char *out = NULL;
        int r = run_command(argv, &out);
        if (r != 0)
                fail_msg("%s: %d: %s", argv[0], r, strempty(out));
}

static void install_fake(const char *root, const char *src, const char *rel) {
        _cleanup_free_ char *text = NULL;
        assert_int_equal(read_full_file(src, &text, NULL), 0);
        put(root, rel, text, 0755);
}

/* The new system's tree: busybox with its applets, the fakes, the rke2 tarball. */
static char *make_rootfs(bool with_wharfie) {
        static unsigned n;
        _cleanup_free_ char *name = strdup_printf("rootfs%u%s", n++, with_wharfie ? "" : "-nowharfie");
        char *rf = path_in(tmp, name);
        char *bin = path_in(rf, "bin");
        mkdir_all(bin);
        _cleanup_free_ char *bb = path_in(bin, "busybox");
        run_ok((char *[]) { (char *)"cp", (char *)"/usr/bin/busybox", bb, NULL });
        static const char *const applets[] = { "sh", "tar", "env", "grep", "mount", "mktemp", "cat", "cp", "mkdir",
                                               "sleep", "dirname", "basename", "wc", "rm", "ls", "true" };
        for (size_t i = 0; i < ELEMENTSOF(applets); i++) {
                _cleanup_free_ char *l = path_in(bin, applets[i]);
                assert_int_equal(symlink("busybox", l), 0);
        }
        static const char *const dirs[] = { "dev", "proc", "tmp", "run", "etc", "usr/local", "var/lib/rancher" };
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *d = path_in(rf, dirs[i]);
                mkdir_all(d);
        }
        const char *src = getenv("TESTS_SOURCE_DIR");
        assert_non_null(src);
        _cleanup_free_ char *fakes = strdup_printf("%s/../qemu/release/preload", src);
        _cleanup_free_ char *w = path_in(fakes, "wharfie"), *c = path_in(fakes, "ctr-check-images.sh");
        if (with_wharfie)
                install_fake(rf, w, PRELOAD_WHARFIE);
        install_fake(rf, c, PRELOAD_CHECK_IMAGES);
        _cleanup_free_ char *share = path_in(rf, "usr/share/preload-test"), *tgz = path_in(share, "rke2.linux-amd64.tar.gz");
        _cleanup_free_ char *rke2src = path_in(fakes, "rke2");
        mkdir_all(share);
        run_ok((char *[]) { (char *)"tar", (char *)"czf", tgz, (char *)"-C", rke2src, (char *)"bin", NULL });
        free(bin);
        return rf;
}

static const char IMAGES_A[] = "docker.io/rancher/harvester:v1.1.2\ndocker.io/longhornio/longhorn-manager:v1.3.2\n";
static const char IMAGES_B[] = "docker.io/rancher/harvester-webhook:v1.1.2\n";

static char *make_iso(const char *name, bool rke2_line) {
        char *iso = path_in(tmp, name);
        put(iso, PRELOAD_BUNDLE "/harvester-images-a.tar.zst", IMAGES_A, 0644);
        put(iso, PRELOAD_BUNDLE "/harvester-images-b.tar.zst", IMAGES_B, 0644);
        put(iso, PRELOAD_LISTS "/harvester-images.txt",
            "docker.io/rancher/harvester:v1.1.2\ndocker.io/longhornio/longhorn-manager:v1.3.2\n"
            "docker.io/rancher/harvester-webhook:v1.1.2\n", 0644);
        put(iso, PRELOAD_RANCHERD_BUNDLE "/rancherd-bootstrap-images-v1.1.2.tar.zst", "rancherd images\n", 0644);
        put(iso, PRELOAD_RANCHERD_BUNDLE "/rancherd-bootstrap-images-v1.1.2.txt",
            rke2_line ? "docker.io/rancher/rancherd:v0.0.1\ndocker.io/rancher/system-agent-installer-rke2:v1.24.11-rke2r1\n"
                      : "docker.io/rancher/rancherd:v0.0.1\n",
            0644);
        return iso;
}

static char *make_state(const char *rootfs) {
        static unsigned n;
        _cleanup_free_ char *name = strdup_printf("state%u", n++);
        char *st = path_in(tmp, name);
        _cleanup_free_ char *cos = path_in(st, "cOS"), *img = path_in(cos, "active.img");
        mkdir_all(cos);
        run_ok((char *[]) { (char *)"mke2fs", (char *)"-q", (char *)"-t", (char *)"ext2", (char *)"-F", (char *)"-L",
                            (char *)"COS_ACTIVE", (char *)"-d", (char *)rootfs, img, (char *)"64M", NULL });
        return st;
}

/* Mounts whose mount point (mountinfo's fifth field) is under tmp. */
static size_t mounts_under_tmp(void) {
        _cleanup_free_ char *info = NULL;
        assert_int_equal(read_full_file("/proc/self/mountinfo", &info, NULL), 0);
        size_t n = 0;
        char *save = NULL;
        for (char *line = strtok_r(info, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char mp[4096];
                if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && strncmp(mp, tmp, strlen(tmp)) == 0)
                        n++;
        }
        return n;
}

static void test_import(void **state) {
        _cleanup_free_ char *rootfs = make_rootfs(true), *iso = make_iso("iso", true), *st = make_state(rootfs);
        _cleanup_free_ char *pers = path_in(tmp, "persistent"), *target = path_in(tmp, "target");
        mkdir_all(pers);
        mkdir_all(target);
        /* As under systemd: COS_PERSISTENT and the target's parent are shared mounts. */
        assert_int_equal(mount(pers, pers, NULL, MS_BIND, NULL), 0);
        assert_int_equal(mount(NULL, pers, NULL, MS_SHARED, NULL), 0);
        assert_int_equal(mount(target, target, NULL, MS_BIND, NULL), 0);
        assert_int_equal(mount(NULL, target, NULL, MS_SHARED, NULL), 0);
        _cleanup_free_ char *under = path_in(target, "root");
        mkdir_all(under);
        free(target);
        target = strdup(under);

        assert_int_equal(preload_wanted(iso), 1);
        assert_int_equal(preload_check(iso, rootfs), 0);
        assert_int_equal(install_preload_images(iso, st, pers, target), 0);
        _cleanup_free_ char *target_parent = path_in(tmp, "target");
        assert_int_equal(mounts_under_tmp(), 2); /* only the test's own two shared binds */
        assert_int_equal(umount(target_parent), 0);
        assert_int_equal(umount(pers), 0);
        assert_int_equal(mounts_under_tmp(), 0);

        _cleanup_free_ char *bind = path_in(pers, ".state/var-lib-rancher.bind");
        _cleanup_free_ char *logp = path_in(bind, "preload-test.log"), *log = read_text(logp);
        print_message("%s", log);
        /* 1: wharfie with v1.1.2's arguments: the rancherd bundle's dir, the rke2 installer, a
         *    fresh directory under /usr/local */
        const char *w = "wharfie --images-dir /var/lib/rancher/agent/images/ "
                        "docker.io/rancher/system-agent-installer-rke2:v1.24.11-rke2r1 /usr/local/preload.";
        char *at_w = strstr(log, w);
        assert_non_null(at_w);
        /* 2: rke2 server, unpacked from that tarball into that directory, with the PATH and
         *    CONTAINERD_ADDRESS of v1.1.2 */
        char *at_r = strstr(log, "rke2 server (PATH=/var/lib/rancher/rke2/bin:");
        assert_non_null(at_r);
        assert_true(at_r > at_w);
        assert_non_null(strstr(at_r, "CONTAINERD_ADDRESS=/run/k3s/containerd/containerd.sock)\n"));
        /* 3: both bundles imported from where the ISO's bundle was bound */
        assert_non_null(strstr(log, "imported harvester-images-a.tar.zst\n"));
        assert_non_null(strstr(log, "imported harvester-images-b.tar.zst\n"));
        /* 4: each list checked until complete */
        assert_non_null(strstr(log, "ctr-check-images.sh /tmp/images-lists/harvester-images.txt: all 3 images present\n"));
        /* 5: the "container" mount of the fake rke2 was made, and undone (mounts_under_tmp above) */
        assert_non_null(strstr(log, "mounted /run/k3s/containerd/io.containerd.runtime.v2.task/k8s.io/fake-etcd/rootfs\n"));

        /* containerd's store stays on COS_PERSISTENT; the tarballs do not */
        _cleanup_free_ char *imported = path_in(bind, "rke2/agent/containerd/fake-images.txt"), *got = read_text(imported);
        assert_non_null(strstr(got, "docker.io/rancher/harvester-webhook:v1.1.2"));
        _cleanup_free_ char *images = path_in(bind, "rke2/agent/images");
        _cleanup_(strv_freep) char **left = NULL;
        DIR *d = opendir(images);
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));)
                if (de->d_name[0] != '.')
                        xpush(&left, de->d_name);
        closedir(d);
        assert_null(left);
        /* the rancherd bundle is copied (rancherd imports it at the first boot) */
        _cleanup_free_ char *rb = path_in(bind, "agent/images/rancherd-bootstrap-images-v1.1.2.tar.zst");
        assert_int_equal(access(rb, F_OK), 0);
        /* the temporary server's leftovers and the work directory are gone */
        _cleanup_free_ char *server = path_in(bind, "rke2/server"), *pod = path_in(bind, "rke2/agent/pod-manifests/etcd.yaml");
        assert_int_equal(access(server, F_OK), -1);
        assert_int_equal(access(pod, F_OK), -1);
        d = opendir(pers);
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));)
                assert_true(strncmp(de->d_name, "preload.", 8) != 0);
        closedir(d);
        /* active.img: no rke2.log, no rke2.yaml */
        _cleanup_free_ char *check = path_in(tmp, "check"), *img = path_in(st, "cOS/active.img");
        /* (the preload's loop device is detached by the kernel a moment after its unmount) */
        int mr = -EBUSY;
        for (int i = 0; i < 50 && mr == -EBUSY; i++) {
                mr = install_mount(img, check, "ext2", "loop,ro");
                if (mr == -EBUSY)
                        usleep(100000);
        }
        assert_int_equal(mr, 0);
        _cleanup_free_ char *l1 = path_in(check, "rke2.log"), *l2 = path_in(check, "etc/rancher/rke2/rke2.yaml");
        assert_int_equal(access(l1, F_OK), -1);
        assert_int_equal(access(l2, F_OK), -1);
        assert_int_equal(install_umount(check), 0);

        /* no process left inside the chroot (the fake rke2 ends in `sleep`) */
        _cleanup_free_ char *real = realpath(target, NULL);
        assert_non_null(real);
        d = opendir("/proc");
        assert_non_null(d);
        for (struct dirent *de; (de = readdir(d));) {
                char link[300], buf[4096];
                snprintf(link, sizeof link, "/proc/%s/root", de->d_name);
                ssize_t k = readlink(link, buf, sizeof buf - 1);
                if (k <= 0)
                        continue;
                buf[k] = 0;
                if (streq(buf, real))
                        fail_msg("process %s still runs inside %s", de->d_name, real);
        }
        closedir(d);
}

static void test_failures(void **state) {
        _cleanup_free_ char *rootfs = make_rootfs(true), *nowharfie = make_rootfs(false);
        _cleanup_free_ char *iso = make_iso("iso2", false), *good = make_iso("iso3", true), *none = path_in(tmp, "none");
        mkdir_all(none);
        /* no bundle: nothing wanted, nothing to check */
        assert_int_equal(preload_wanted(none), 0);
        assert_int_equal(preload_check(none, nowharfie), 0);
        /* a bundle, but the image lacks wharfie; a rancherd list without the rke2 installer */
        assert_int_equal(preload_check(good, nowharfie), -ENOENT);
        assert_int_equal(preload_check(iso, rootfs), -ENOENT);
        /* no image lists */
        _cleanup_free_ char *lists = path_in(good, PRELOAD_LISTS "/harvester-images.txt");
        assert_int_equal(unlink(lists), 0);
        assert_int_equal(preload_check(good, rootfs), -ENOENT);

        /* the import itself failing (no rke2 installer named): an error, and every mount undone */
        _cleanup_free_ char *st = make_state(rootfs), *pers = path_in(tmp, "persistent2"), *target = path_in(tmp, "target2");
        mkdir_all(pers);
        assert_int_equal(install_preload_images(iso, st, pers, target), -ENOENT);
        assert_int_equal(mounts_under_tmp(), 0);
}

static int setup(void **state) {
        tmp = tmpdir_new();
        return 0;
}

static int teardown(void **state) {
        tmpdir_remove(tmp);
        return 0;
}

int main(void) {
        if (geteuid() != 0)
                return fprintf(stderr, "SKIP: not root\n"), 77;
        if (access("/dev/loop-control", F_OK) < 0)
                return fprintf(stderr, "SKIP: no loop devices\n"), 77;
        if (access("/usr/bin/busybox", X_OK) < 0)
                return fprintf(stderr, "SKIP: no /usr/bin/busybox (busybox-static)\n"), 77;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_import),
                cmocka_unit_test(test_failures),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
