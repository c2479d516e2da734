/* SPDX-License-Identifier: Apache-2.0 */
/*
 * v1.1.2 does not keep the image tarballs on the node: harv-install binds the ISO's bundle where
 * rke2 looks for images to import, starts a temporary `rke2 server` inside a chroot of the new
 * system (rke2 itself taken out of the rancherd bundle's system-agent-installer-rke2 image with
 * wharfie), waits until ctr-check-images.sh sees every listed image in containerd, stops it and
 * unbinds the bundle. containerd's store stays on COS_PERSISTENT (/var/lib/rancher), the tarballs
 * stay on the ISO. This file runs those steps; install.c assembles the chroot.
 */
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "format.h"
#include "log.h"
#include "preload.h"

#define PRELOAD_PATH "PATH=/var/lib/rancher/rke2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define PRELOAD_CADDR "CONTAINERD_ADDRESS=" PRELOAD_CONTAINERD_ADDRESS

static inline void closedirp(DIR **d) { if (*d) closedir(*d); }

static void sleep_usec(uint64_t usec) {
        struct timespec ts = { .tv_sec = (time_t)(usec / 1000000), .tv_nsec = (long)(usec % 1000000) * 1000 };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int cmp_str(const void *a, const void *b) {
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the regular files of dir ending in suffix (NULL: any), sorted. -ENOENT when dir is missing. */
static int list_files(const char *dir, const char *prefix, const char *suffix, char ***ret) {
        _cleanup_(closedirp) DIR *d = opendir(dir);
        if (!d)
                return -errno;
        _cleanup_(strv_freep) char **l = NULL;
        for (struct dirent *de; (de = readdir(d));) {
                size_t n = strlen(de->d_name), sl = suffix ? strlen(suffix) : 0;
                if (de->d_name[0] == '.' || n < sl || (suffix && strcmp(de->d_name + n - sl, suffix) != 0) ||
                    (prefix && strncmp(de->d_name, prefix, strlen(prefix)) != 0))
                        continue;
                struct stat st;
                if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
                        continue;
                if (strv_push(&l, de->d_name) < 0)
                        return -ENOMEM;
        }
        if (l)
                qsort(l, strv_length(l), sizeof(char *), cmp_str);
        *ret = TAKE_PTR(l);
        return 0;
}

int preload_wanted(const char *iso_dir) {
        _cleanup_free_ char *dir = strdup_printf("%s/" PRELOAD_BUNDLE, iso_dir);
        _cleanup_(strv_freep) char **files = NULL;
        if (!dir)
                return -ENOMEM;
        int r = list_files(dir, NULL, NULL, &files);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Cannot read the ISO's %s: %s", PRELOAD_BUNDLE, strerror(-r));
        return files && files[0] ? 1 : 0;
}

/* The rke2 installer image named by the rancherd bundle's first rancherd-bootstrap-images-*.txt. */
static int rke2_installer_image(const char *rancherd_dir, char **ret) {
        _cleanup_(strv_freep) char **lists = NULL;
        int r = list_files(rancherd_dir, "rancherd-bootstrap-images-", ".txt", &lists);
        if (r < 0 && r != -ENOENT)
                return log_error_errno(r, "Cannot read %s: %s", rancherd_dir, strerror(-r));
        if (!lists || !lists[0])
                return log_error_errno(ENOENT, "%s has no rancherd-bootstrap-images-*.txt: the image preload cannot find "
                                               "rke2. Use a Harvester ISO.", rancherd_dir);
        size_t dl = strlen(rancherd_dir);
        _cleanup_free_ char *path = strdup_printf("%s%s%s", rancherd_dir, dl && rancherd_dir[dl - 1] == '/' ? "" : "/",
                                                  lists[0]), *text = NULL;
        if (!path)
                return log_oom();
        r = read_full_file(path, &text, NULL);
        if (r < 0)
                return log_error_errno(r, "Cannot read %s: %s", path, strerror(-r));
        for (char *line = text, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                line[strcspn(line, " \t\r")] = 0;
                if (strncmp(line, PRELOAD_RKE2_INSTALLER, strlen(PRELOAD_RKE2_INSTALLER)) == 0 &&
                    line[strlen(PRELOAD_RKE2_INSTALLER)]) {
                        *ret = strdup(line);
                        return *ret ? 0 : log_oom();
                }
        }
        return log_error_errno(ENOENT, "%s names no %s... image: the image preload cannot find rke2. Use a Harvester ISO.",
                               path, PRELOAD_RKE2_INSTALLER);
}

int preload_check(const char *iso_dir, const char *rootfs_dir) {
        int r = preload_wanted(iso_dir);
        if (r <= 0)
                return r;
        static const char *const needed_iso[] = { PRELOAD_LISTS };
        for (size_t i = 0; i < ELEMENTSOF(needed_iso); i++) {
                _cleanup_free_ char *p = strdup_printf("%s/%s", iso_dir, needed_iso[i]);
                _cleanup_(strv_freep) char **l = NULL;
                if (!p)
                        return log_oom();
                r = list_files(p, NULL, ".txt", &l);
                if (r < 0 || !l || !l[0])
                        return log_error_errno(ENOENT, "The ISO carries %s but no image lists in %s: the images cannot be "
                                                       "preloaded. Use a Harvester ISO.", PRELOAD_BUNDLE, needed_iso[i]);
        }
        _cleanup_free_ char *rancherd = strdup_printf("%s/" PRELOAD_RANCHERD_BUNDLE, iso_dir), *image = NULL;
        if (!rancherd)
                return log_oom();
        r = rke2_installer_image(rancherd, &image);
        if (r < 0)
                return r;
        /* What runs inside the new system (tar and env: any path of the image's PATH). */
        static const char *const needed_root[] = { PRELOAD_WHARFIE, PRELOAD_CHECK_IMAGES };
        for (size_t i = 0; i < ELEMENTSOF(needed_root); i++) {
                _cleanup_free_ char *p = strdup_printf("%s/%s", rootfs_dir, needed_root[i]);
                if (!p)
                        return log_oom();
                if (access(p, X_OK) < 0)
                        return log_error_errno(ENOENT, "The ISO carries %s, but its image has no /%s to preload them "
                                                       "with (as Harvester v1.1.2 does). Use a Harvester ISO.",
                                               PRELOAD_BUNDLE, needed_root[i]);
        }
        static const char *const tools[] = { "tar", "env" };
        static const char *const dirs[] = { "usr/bin", "bin", "usr/sbin", "sbin" };
        for (size_t i = 0; i < ELEMENTSOF(tools); i++) {
                bool found = false;
                for (size_t k = 0; k < ELEMENTSOF(dirs) && !found; k++) {
                        _cleanup_free_ char *p = strdup_printf("%s/%s/%s", rootfs_dir, dirs[k], tools[i]);
                        found = p && faccessat(AT_FDCWD, p, X_OK, 0) == 0;
                }
                if (!found)
                        return log_error_errno(ENOENT, "The image has no %s (in /usr/bin, /bin, /usr/sbin or /sbin) to "
                                                       "preload the container images with. Use a Harvester ISO.", tools[i]);
        }
        log_info("The ISO's image bundle will be imported into containerd during the install (rke2 from %s).", image);
        return 0;
}

/* ---- Running inside the new system ---- */

/* chroot root env -i HOME=/root PATH=... CONTAINERD_ADDRESS=... argv... into full (16 entries):
 * nothing of the installer's own environment (TMPDIR ...) goes into the new system. 0 or -E2BIG. */
static int chroot_argv(const char *root, char *const *argv, char *full[static 16]) {
        char *const head[] = { (char *)"chroot", (char *)root, (char *)"env", (char *)"-i", (char *)"HOME=/root",
                               (char *)PRELOAD_PATH, (char *)PRELOAD_CADDR };
        size_t n = 0;
        for (; n < ELEMENTSOF(head); n++)
                full[n] = head[n];
        for (size_t i = 0; argv[i]; i++) {
                if (n + 1 >= 16)
                        return -E2BIG;
                full[n++] = argv[i];
        }
        full[n] = NULL;
        return 0;
}

/* Runs argv in the new system (chroot_argv()), output captured. */
static int run_in(const char *root, char *const *argv, char **ret_output) {
        char *full[16];
        int r = chroot_argv(root, argv, full);
        return r < 0 ? r : run_command(full, ret_output);
}

/* Starts argv in the new system (chroot_argv()) in the background, stdout and stderr to log_fd. */
static int spawn_in(const char *root, char *const *argv, int log_fd, pid_t *ret_pid) {
        char *full[16];
        int r = chroot_argv(root, argv, full);
        return r < 0 ? r : command_spawn(full, log_fd, ret_pid);
}

/* Waits for pid until deadline: its exit status, or -ETIMEDOUT (it is then killed and reaped). */
static int wait_until(pid_t pid, uint64_t deadline) {
        for (;;) {
                int status;
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w < 0 && errno != EINTR)
                        return -errno;
                if (w == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (now_usec() >= deadline) {
                        kill(pid, SIGKILL);
                        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                                ;
                        return -ETIMEDOUT;
                }
                sleep_usec(200000);
        }
}

/* The processes whose root directory is root (the temporary rke2, its containerd and shims). */
static int chrooted_pids(const char *root_real, pid_t *pids, size_t max, size_t *ret_n) {
        _cleanup_(closedirp) DIR *d = opendir("/proc");
        size_t n = 0;
        if (!d)
                return -errno;
        for (struct dirent *de; (de = readdir(d));) {
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                if (*end || pid <= 1 || pid == getpid())
                        continue;
                char link[64], target[4096];
                snprintf(link, sizeof link, "/proc/%ld/root", pid);
                ssize_t k = readlink(link, target, sizeof target - 1);
                if (k <= 0)
                        continue;
                target[k] = 0;
                if (streq(target, root_real) && n < max)
                        pids[n++] = (pid_t)pid;
        }
        *ret_n = n;
        return 0;
}

/* TERM to every process inside root, up to 10 s for them to end, then KILL. The server (our child) is reaped. */
static int stop_chrooted(const char *root, pid_t server) {
        _cleanup_free_ char *real = realpath(root, NULL);
        pid_t pids[256];
        size_t n = 0;
        if (!real)
                return -errno;
        if (server > 0)
                kill(server, SIGTERM);
        for (int round = 0; round < 60; round++) {
                int r = chrooted_pids(real, pids, ELEMENTSOF(pids), &n);
                if (r < 0)
                        return r;
                if (server > 0 && waitpid(server, NULL, WNOHANG) == server)
                        server = 0;
                if (n == 0 && server <= 0)
                        return 0;
                for (size_t i = 0; i < n; i++)
                        kill(pids[i], round < 50 ? SIGTERM : SIGKILL);
                sleep_usec(200000);
        }
        if (server > 0)
                (void)waitpid(server, NULL, 0);
        return n == 0 ? 0 : log_error_errno(EBUSY, "%zu processes of the image preload in %s do not end.", n, root);
}

/* Unmounts (lazily, deepest first) every mount below root that the import itself left: a real
 * rke2 mounts its containers' root file systems under /run/k3s and /var/lib/rancher/rke2. The
 * mounts install.c made (keep, NULL-terminated, full paths) stay for it to undo. */
static int umount_leftovers(const char *root, const char *const *keep) {
        _cleanup_free_ char *info = NULL;
        _cleanup_(strv_freep) char **found = NULL;
        size_t rl = strlen(root);
        int r = read_full_file("/proc/self/mountinfo", &info, NULL);
        if (r < 0)
                return r;
        for (char *line = info, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                /* id parent major:minor root mount-point ... (octal escapes in the paths) */
                char *f = line;
                for (int i = 0; i < 4 && f; i++) {
                        f = strchr(f, ' ');
                        if (f)
                                f++;
                }
                if (!f)
                        continue;
                f[strcspn(f, " ")] = 0;
                char mp[4096];
                size_t n = 0;
                for (const char *c = f; *c && n + 1 < sizeof mp; c++) {
                        if (c[0] == '\\' && c[1] >= '0' && c[1] <= '3' && c[2] && c[3]) {
                                mp[n++] = (char)(((c[1] - '0') << 6) | ((c[2] - '0') << 3) | (c[3] - '0'));
                                c += 3;
                        } else
                                mp[n++] = *c;
                }
                mp[n] = 0;
                if (strncmp(mp, root, rl) != 0 || mp[rl] != '/')
                        continue;
                bool ours = false;
                for (size_t i = 0; keep && keep[i]; i++)
                        ours = ours || streq(mp, keep[i]);
                if (!ours && strv_push(&found, mp) < 0)
                        return -ENOMEM;
        }
        /* mountinfo lists parents first: undo in reverse */
        for (size_t i = strv_length(found); i-- > 0;) {
                log_info("Image preload: unmounting %s, left by the import.", found[i]);
                if (umount2(found[i], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                        return log_error_errno(errno, "Cannot unmount %s: %s", found[i], strerror(errno));
        }
        return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf path, staying on its file system. */
static int rm_rf(const char *path) {
        if (access(path, F_OK) < 0)
                return errno == ENOENT ? 0 : -errno;
        return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0 ? -errno : 0;
}

static void log_file_tail(const char *path, const char *what) {
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        if (read_full_file(path, &text, &len) < 0 || len == 0)
                return;
        const char *start = len > 2000 ? text + len - 2000 : text;
        log_error("The end of %s:", what);
        char *save = NULL;
        for (char *line = strtok_r((char *)start, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                log_error("  %s", line);
}

static int step(const char *root, char *const *argv, const char *what) {
        _cleanup_free_ char *out = NULL;
        _cleanup_free_ char *cmd = strv_join(argv, " ");
        log_info("Image preload: chroot %s %s", root, cmd ? cmd : argv[0]);
        int r = run_in(root, argv, &out);
        if (r == 0)
                return 0;
        if (r < 0)
                return log_error_errno(r, "Cannot run %s in the new system: %s", argv[0], strerror(-r));
        log_error("%s failed in the new system (exit status %d) while %s. Its output:", argv[0], r, what);
        char *save = NULL;
        for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                log_error("  %s", line);
        return -EIO;
}

int preload_import(const char *root, const char *const *keep_mounts, uint64_t timeout_usec) {
        uint64_t start = now_usec(), deadline = start + timeout_usec;
        _cleanup_free_ char *rancherd = strdup_printf("%s" PRELOAD_RANCHERD_DIR, root), *image = NULL;
        _cleanup_free_ char *tmp = strdup_printf("%s/usr/local/preload.XXXXXX", root), *log_path = NULL;
        _cleanup_free_ char *tarball = NULL, *rke2_dir = NULL, *rke2 = NULL, *lists_dir = NULL;
        _cleanup_(strv_freep) char **lists = NULL;
        _cleanup_(closep) int log_fd = -1;
        pid_t server = -1;
        int r, q;

        if (!rancherd || !tmp)
                return log_oom();
        r = rke2_installer_image(rancherd, &image);
        if (r < 0)
                return r;
        lists_dir = strdup_printf("%s" PRELOAD_LISTS_DIR, root);
        if (!lists_dir)
                return log_oom();
        r = list_files(lists_dir, NULL, ".txt", &lists);
        if (r < 0 || !lists || !lists[0])
                return log_error_errno(r < 0 ? -r : ENOENT, "No image lists in %s: nothing to check the import against.",
                                       lists_dir);
        if (!mkdtemp(tmp))
                return log_error_errno(errno, "Cannot make a directory in the new system's /usr/local: %s", strerror(errno));
        const char *ctmp = tmp + strlen(root); /* the same directory, as the chroot sees it */

        /* rke2 out of the installer image of the rancherd bundle, then unpacked. */
        tarball = strdup_printf("%s/rke2.linux-amd64.tar.gz", ctmp);
        rke2_dir = strdup_printf("%s/rke2", ctmp);
        rke2 = strdup_printf("%s/rke2/bin/rke2", ctmp);
        _cleanup_free_ char *rke2_host = strdup_printf("%s/rke2", tmp);
        log_path = strdup_printf("%s/rke2.log", root);
        if (!tarball || !rke2_dir || !rke2 || !rke2_host || !log_path) {
                r = log_oom();
                goto cleanup;
        }
        r = step(root, (char *[]) { (char *)"wharfie", (char *)"--images-dir", (char *)PRELOAD_RANCHERD_DIR, image,
                                    (char *)ctmp, NULL }, "taking rke2 out of its installer image");
        if (r < 0)
                goto cleanup;
        if (mkdir(rke2_host, 0700) < 0) {
                r = log_error_errno(errno, "Cannot make %s: %s", rke2_host, strerror(errno));
                goto cleanup;
        }
        r = step(root, (char *[]) { (char *)"tar", (char *)"-xzf", tarball, (char *)"-C", rke2_dir, NULL }, "unpacking rke2");
        if (r < 0)
                goto cleanup;

        /* A temporary rke2 server: its containerd imports what PRELOAD_IMAGES_DIR holds. */
        log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (log_fd < 0) {
                r = log_error_errno(errno, "Cannot create %s: %s", log_path, strerror(errno));
                goto cleanup;
        }
        log_info("Image preload: chroot %s %s server (in the background, output in /rke2.log)", root, rke2);
        r = spawn_in(root, (char *[]) { rke2, (char *)"server", NULL }, log_fd, &server);
        if (r < 0) {
                server = -1;
                r = log_error_errno(r, "Cannot start rke2 in the new system: %s", strerror(-r));
                goto cleanup;
        }
        for (;;) {
                _cleanup_free_ char *out = NULL;
                q = run_in(root, (char *[]) { (char *)"ctr", (char *)"--connect-timeout", (char *)"1s", (char *)"version", NULL },
                           &out);
                if (q == 0)
                        break;
                int status;
                if (waitpid(server, &status, WNOHANG) == server) {
                        server = -1;
                        r = log_error_errno(EIO, "rke2 server ended before its containerd answered (exit status %d).",
                                            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
                        log_file_tail(log_path, "rke2.log");
                        goto cleanup;
                }
                if (now_usec() >= deadline) {
                        r = log_error_errno(ETIMEDOUT, "rke2's containerd did not answer within %" PRIu64 " s.",
                                            timeout_usec / 1000000);
                        log_file_tail(log_path, "rke2.log");
                        goto cleanup;
                }
                sleep_usec(1000000);
        }
        log_info("Image preload: containerd is up after %.1f s; waiting until every listed image is imported.",
                 (double)(now_usec() - start) / 1e6);

        for (size_t i = 0; lists[i]; i++) {
                _cleanup_free_ char *list = strdup_printf(PRELOAD_LISTS_DIR "/%s", lists[i]);
                if (!list) {
                        r = log_oom();
                        goto cleanup;
                }
                log_info("Image preload: chroot %s %s %s", root, "/" PRELOAD_CHECK_IMAGES, list);
                pid_t pid;
                r = spawn_in(root, (char *[]) { (char *)"/" PRELOAD_CHECK_IMAGES, list, NULL }, log_fd, &pid);
                if (r < 0) {
                        r = log_error_errno(r, "Cannot run ctr-check-images.sh in the new system: %s", strerror(-r));
                        goto cleanup;
                }
                q = wait_until(pid, deadline);
                if (q == -ETIMEDOUT)
                        r = log_error_errno(ETIMEDOUT, "The images of %s were not all imported within %" PRIu64 " s.",
                                            list, timeout_usec / 1000000);
                else if (q != 0)
                        r = log_error_errno(EIO, "ctr-check-images.sh failed for %s (%d).", list, q);
                if (q != 0) {
                        log_file_tail(log_path, "rke2.log");
                        goto cleanup;
                }
        }
        log_info("Image preload: every image of %zu lists is in containerd (%.1f s).", strv_length(lists),
                 (double)(now_usec() - start) / 1e6);
        r = 0;

cleanup:
        q = stop_chrooted(root, server);
        if (q < 0 && r == 0)
                r = q;
        q = umount_leftovers(root, keep_mounts);
        if (q < 0 && r == 0)
                r = q;
        /* What the temporary server leaves that the node's own rke2 must not find. */
        static const char *const leftovers[] = { "/rke2.log", "/etc/rancher/rke2/rke2.yaml", "/var/lib/rancher/rke2/server" };
        for (size_t i = 0; i < ELEMENTSOF(leftovers); i++) {
                _cleanup_free_ char *p = strdup_printf("%s%s", root, leftovers[i]);
                q = p ? rm_rf(p) : -ENOMEM;
                if (q < 0 && r == 0)
                        r = log_error_errno(q, "Cannot remove %s: %s", leftovers[i], strerror(-q));
        }
        _cleanup_free_ char *manifests = strdup_printf("%s/var/lib/rancher/rke2/agent/pod-manifests", root);
        _cleanup_(strv_freep) char **m = NULL;
        if (manifests && list_files(manifests, NULL, NULL, &m) >= 0)
                STRV_FOREACH(f, m) {
                        _cleanup_free_ char *p = strdup_printf("%s/%s", manifests, *f);
                        if (p)
                                (void)unlink(p);
                }
        q = rm_rf(tmp);
        if (q < 0 && r == 0)
                r = log_error_errno(q, "Cannot remove %s: %s", tmp, strerror(-q));
        return r;
}
