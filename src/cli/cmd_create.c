/*
 * cmd_create.c - `fed snapshot create`: make a service snapshot in one step.
 *
 *   stage  a temporary directory gets a copy of --files DIR plus
 *          etc/fed/service holding --run CMD, and becomes an ext2 import
 *          disk (import_disk_make: mke2fs -d, nothing mounted)
 *   boot   the UML kernel (--kernel, default fed's) over --base with a
 *          fresh copy-on-write file and the import disk as ubdb,
 *          `fed.import=/dev/ubdb`: the base's /init copies the disk's
 *          files/ into the root, prints "fed-init: imported" and powers
 *          off (docs/base-image.md).  uml_boot bounds it by --timeout and
 *          kills its whole process group at the end whatever happened; a
 *          kernel that died is quoted (machine_last_words).
 *   pack   the COW against the base, signed and printed by the very code
 *          of `fed snapshot pack` (snap_pack_write).
 *
 * With --running the machine is then booted under QEMU until it serves and
 * saved with its memory (cmd_create_qemu.c): --kernel is the QEMU kernel
 * object, and the import boot uses --uml-kernel (default fed's kernel).
 *
 * No hostfs: fed's kernel has none, so a guest never sees the host's files;
 * the owner's files reach the guest on a disk of their own.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/create.h"
#include "common/proc.h"
#include "common/timefmt.h"
#include "common/cow.h"
#include "machine/jail.h"
#include "machine/machine.h"

#define CREATE_WHY_MAX 640	/* a reason, with the kernel's last words */

static const char create_help[] =
	"usage: fed snapshot create [--kernel FILE] --base IMG --files DIR\n"
	"           --run CMD --service HOST:PORT --guest-port N --key KEYFILE\n"
	"           -o OUT [--name NAME] [--version N] [--mem MB]\n"
	"           [--timeout SECONDS] [--chunk-size BYTES] [--keep-log FILE]\n"
	"           [--running [--uml-kernel FILE]] [--egress PROTO/PORT]...\n"
	"           [--setup CMD]... [--setup-files DIR] [--json]\n"
	"\n"
	"Boot the UML kernel FILE (default fed's, " FED_UML_KERNEL ")\n"
	"over the base image IMG with a fresh copy-on-write file, copy DIR's\n"
	"contents into the machine's root through a disk of their own (so\n"
	"DIR/var/www/index.html becomes /var/www/index.html) and record CMD as\n"
	"/etc/fed/service, the command the base's /init starts at every boot;\n"
	"then pack and sign the delta as `fed snapshot pack` does.\n"
	"\n"
	"  --setup CMD        run CMD (sh -e, as root) inside the guest at\n"
	"                     import time, after DIR is copied; repeatable,\n"
	"                     in order; a failing CMD fails the import.  E.g.\n"
	"                     'dpkg -i /mnt/setup-files/*.deb'\n"
	"  --setup-files DIR  put DIR on the import disk as /mnt/setup-files\n"
	"                     for the setup commands (not copied into the root)\n"
	"  --mem MB           guest memory for the import boot (default 64;\n"
	"                     with --running, of the QEMU machine: default 128)\n"
	"  --timeout SECONDS  give up on a boot (default 120)\n"
	"  --keep-log FILE    write the guest's console output to FILE\n"
	"  --egress PROTO/PORT as for `fed snapshot pack`: ask peers to let the\n"
	"                     guest open connections out on that port\n"
	"  --running          a running-state snapshot: after the import, boot\n"
	"                     the machine under QEMU (--kernel is then a QEMU\n"
	"                     kernel object, scripts/mkqemukernel.sh) until the\n"
	"                     guest port accepts, save its memory and pack disk\n"
	"                     and memory; peers resume it instead of booting.\n"
	"                     Needs root and qemu-system-x86_64; --kernel is\n"
	"                     then required.\n"
	"  --uml-kernel FILE  with --running: the UML kernel of the import boot\n"
	"                     (default " FED_UML_KERNEL ")\n";

/* Copy src's contents into dst with `cp -a`.  Returns 0/-1. */
static int
create_copy_tree(const char *src, const char *dst)
{
	char from[PATH_MAX + 2];
	char *argv[] = { "cp", "-a", "--", from, (char *)dst, NULL };

	snprintf(from, sizeof(from), "%s/.", src);
	return proc_run(argv, -1, STDERR_FILENO) == 0 ? 0 : -1;
}

/* Write the service command as STAGE/etc/fed/service.  Returns 0/-1. */
static int
create_stage_service(const char *stage, const char *cmd)
{
	char path[PATH_MAX + 32];
	FILE *f;

	snprintf(path, sizeof(path), "%s/etc", stage);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -1;
	snprintf(path, sizeof(path), "%s/etc/fed", stage);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		return -1;
	snprintf(path, sizeof(path), "%s/etc/fed/service", stage);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	fprintf(f, "%s\n", cmd);
	if (fclose(f) != 0 || chmod(path, 0644) < 0)
		return -1;
	return 0;
}

#define CREATE_SETUP_MAX 16	/* --setup commands */

/* What goes on the import disk besides files/. */
struct create_setup {
	const char *cmd[CREATE_SETUP_MAX];
	int n;
	const char *files;	/* --setup-files DIR, or NULL */
};

/* Write the setup commands as ROOT/setup, the script the base's /init
 * runs after the copy (docs/base-image.md).  Returns 0/-1. */
static int
create_stage_setup(const char *root, const struct create_setup *su)
{
	char path[PATH_MAX + 16];
	FILE *f;
	int i;

	if (su->n == 0)
		return 0;
	snprintf(path, sizeof(path), "%s/setup", root);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	for (i = 0; i < su->n; i++)
		fprintf(f, "%s\n", su->cmd[i]);
	if (fclose(f) != 0 || chmod(path, 0644) < 0)
		return -1;
	if (su->files != NULL) {
		snprintf(path, sizeof(path), "%s/setup-files", root);
		if (mkdir(path, 0755) < 0 || create_copy_tree(su->files, path) < 0)
			return -1;
	}
	return 0;
}

/*
 * The import disk at disk: tmp/import/files/ gets a copy of files and
 * etc/fed/service holding run, tmp/import/setup the setup commands (and
 * setup-files/ their files), and tmp/import becomes an ext2 image.
 * Returns 0/-1.
 */
static int
create_import_disk(const char *tmp, const char *files, const char *run,
		   const struct create_setup *su, const char *disk,
		   struct err *e)
{
	char root[PATH_MAX], stage[PATH_MAX + 8];

	snprintf(root, sizeof(root), "%s/import", tmp);
	snprintf(stage, sizeof(stage), "%s/files", root);
	if (mkdir(root, 0755) < 0 || mkdir(stage, 0755) < 0 ||
	    create_copy_tree(files, stage) < 0 ||
	    create_stage_service(stage, run) < 0)
		return err_set(e, "staging %s into %s failed", files, stage);
	if (create_stage_setup(root, su) < 0)
		return err_set(e, "staging the setup commands into %s failed",
			       root);
	return import_disk_make(root, disk, e);
}

/* The import boot's jail (machine/jail.h), when fed runs as root: its own
 * uid (FED_IMPORT_UID), mount, pid, ipc, uts and an empty network
 * namespace, the kernel, the COW (made here, as UML would, so that it can
 * be bound in), the base and the import disk in /vm, the seccomp filter. */
struct create_jail {
	struct jail_plan *plan;
	struct machine_seccomp seccomp;
	char root[PATH_MAX + 8];
};

static void
create_jail_free(struct create_jail *j)
{
	free(j->plan);
	machine_seccomp_free(&j->seccomp);
	rmdir(j->root);
}

static int
create_jail(struct create_jail *j, const char *kernel, const char *cow,
	    const char *base, const char *disk, unsigned mem_mb,
	    char *const *argv, struct err *e)
{
	const struct jail_bind binds[] = {
		{ kernel, "kernel", false }, { cow, "disk.cow", true },
		{ base, "base.img", false }, { disk, "import.img", false },
	};
	struct jail_params p = {
		.uid = FED_IMPORT_UID, .gid = FED_IMPORT_UID, .binds = binds,
		.nbinds = 4, .usr = true, .tmp_mb = mem_mb + 16,
		.nofile = 1024, .argv = argv, .fixed_brk = true,
	};
	struct cow_header h;
	struct stat sb;
	int fd, rc;

	memset(j, 0, sizeof(*j));
	snprintf(j->root, sizeof(j->root), "%s.jail", cow);
	if (mkdir(j->root, 0755) < 0)
		return err_sys(e, "%s", j->root);
	if ((fd = open(cow, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) < 0)
		return err_sys(e, "%s", cow);
	rc = cow_header_for_base(base, &h, e) < 0 || cow_write_header(fd, &h, e) < 0 ||
	     fchown(fd, FED_IMPORT_UID, FED_IMPORT_UID) < 0 ? -1 : 0;
	close(fd);
	if (rc < 0)
		return err_wrap(e, "the import's COW");
	p.root = j->root;
	p.fsize = stat(base, &sb) == 0 ? (uint64_t)sb.st_size * 2 : 0;
	if ((j->plan = malloc(sizeof(*j->plan))) == NULL)
		return err_set(e, "out of memory");
	if (jail_plan(&p, j->plan, e) < 0 ||
	    machine_seccomp_build(&j->seccomp, e) < 0)
		return -1;
	j->plan->seccomp = &j->seccomp.prog;
	return 0;
}

/* Run the import boot b and say how it went: 0 if the guest imported. */
static int
create_boot_run(struct uml_boot *b, unsigned timeout_s, char **log,
		char why[CREATE_WHY_MAX])
{
	char words[LAST_WORDS_MAX];
	const char *failed;
	struct err e;

	*log = NULL;
	if (uml_boot(b, &e) < 0) {
		snprintf(why, CREATE_WHY_MAX, "%s", e.msg);
		return -1;
	}
	*log = b->console;
	if (strstr(b->console, "fed-init: imported") != NULL)
		return 0;
	failed = strstr(b->console, "fed-init: import failed");
	machine_last_words(b->console, b->console_len, words, sizeof(words));
	if (b->timed_out)
		snprintf(why, CREATE_WHY_MAX, "the import boot did not finish "
			 "within %u s; the console's last words: %s", timeout_s,
			 words[0] ? words : "(none)");
	else if (failed != NULL)
		snprintf(why, CREATE_WHY_MAX, "the guest says: %.200s", failed);
	else
		snprintf(why, CREATE_WHY_MAX, "the guest did not say 'fed-init: "
			 "imported' (UML %s %d); the kernel's last words: %s",
			 WIFEXITED(b->status) ? "exit status" : "killed by signal",
			 WIFEXITED(b->status) ? WEXITSTATUS(b->status) :
			 WTERMSIG(b->status), words[0] ? words : "(none)");
	return -1;
}

/*
 * Boot the import: kernel over cow,base, the import disk as ubdb and
 * fed.import=/dev/ubdb, in a jail when we are root (create_jail; an owner
 * running fed as an ordinary user has no privilege to drop, and boots it
 * as that user).  The console goes into *log (malloc'd,
 * NUL-terminated).  Returns 0 if the guest printed "fed-init: imported"
 * before it exited, else -1 with a reason in why: the guest's own, or the
 * kernel's last words when it died.
 */
static int
create_boot(const char *kernel, const char *cow, const char *base,
	    const char *disk, unsigned mem_mb, unsigned timeout_s, char **log,
	    char why[CREATE_WHY_MAX])
{
	char ubd0[2 * PATH_MAX + 8], ubd1[PATH_MAX + 8], mem[32];
	char *argv[] = { (char *)kernel, ubd0, ubd1, "root=/dev/ubda", "rw",
			 "init=/init", mem, "con=null", "con0=null,fd:1",
			 "ssl=null", "pty.legacy_count=0", "quiet",
			 "fed.import=/dev/ubdb", NULL, NULL };
	struct uml_boot b = { .argv = argv, .timeout_s = timeout_s };
	struct create_jail j;
	struct err e;
	int rc;

	snprintf(mem, sizeof(mem), "mem=%uM", mem_mb);
	if (geteuid() == 0) {	/* jailed: paths in /vm */
		snprintf(ubd0, sizeof(ubd0), "ubd0=" JAIL_VM_DIR "/disk.cow,"
			 JAIL_VM_DIR "/base.img");
		snprintf(ubd1, sizeof(ubd1), "ubd1r=" JAIL_VM_DIR "/import.img");
		argv[0] = JAIL_VM_DIR "/kernel";
		argv[13] = "uml_dir=/tmp";
		if (create_jail(&j, kernel, cow, base, disk, mem_mb, argv,
				&e) < 0) {
			snprintf(why, CREATE_WHY_MAX, "%s", e.msg);
			return -1;
		}
		b.jail = j.plan;
	} else {
		snprintf(ubd0, sizeof(ubd0), "ubd0=%s,%s", cow, base);
		snprintf(ubd1, sizeof(ubd1), "ubd1r=%s", disk);
	}
	rc = create_boot_run(&b, timeout_s, log, why);
	if (b.jail != NULL)
		create_jail_free(&j);
	return rc;
}

/* rm -rf of the temporary directory (it holds only what we put there). */
static void
create_cleanup(const char *dir)
{
	char *argv[] = { "rm", "-rf", "--", (char *)dir, NULL };

	if (dir[0] != '\0')
		proc_run(argv, -1, STDERR_FILENO);
}

/* Hash the file at path.  Returns 0/-1. */
static int
create_hash(const char *path, uint8_t out[SHA256_LEN], struct err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

	if (fd < 0)
		return err_sys(e, "%s", path);
	rc = sha256_fd(fd, out, e);
	close(fd);
	return rc;
}

int
cmd_snapshot_create(int argc, char **argv)
{
	static const struct option opts[] = {
		SNAP_LONG_OPTS,
		{ "kernel", required_argument, NULL, 'k' },
		{ "base", required_argument, NULL, 'b' },
		{ "files", required_argument, NULL, 'f' },
		{ "run", required_argument, NULL, 'r' },
		{ "output", required_argument, NULL, 'o' },
		{ "mem", required_argument, NULL, 'm' },
		{ "timeout", required_argument, NULL, 't' },
		{ "keep-log", required_argument, NULL, 'L' },
		{ "running", no_argument, NULL, 'R' },
		{ "uml-kernel", required_argument, NULL, 'U' },
		{ "setup", required_argument, NULL, 'S' },
		{ "setup-files", required_argument, NULL, 'F' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *kernel = NULL, *base = NULL, *files = NULL, *run = NULL,
		   *out = NULL, *keep_log = NULL,
		   *uml_kernel = FED_UML_KERNEL;
	uint64_t mem = 0, timeout_s = 120;
	struct snap_opts so;
	struct create_setup su = { .n = 0 };
	const char *kernel_boot;
	char tmp[PATH_MAX] = "", cow[PATH_MAX], disk[PATH_MAX],
	     kexec[PATH_MAX], base_abs[PATH_MAX], why[CREATE_WHY_MAX],
	     *log = NULL;
	uint8_t seed[ED25519_SEED_LEN];
	struct manifest m;
	struct stat sb;
	struct err e;
	bool running = false;
	int c, r, rc = 1;

	memset(&m, 0, sizeof(m));
	snap_opts_init(&so);
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		if ((r = snap_opt(&so, c, "snapshot create")) == 1)
			continue;
		if (r != 0)
			return r;
		switch (c) {
		case 'k': kernel = optarg; break;
		case 'b': base = optarg; break;
		case 'f': files = optarg; break;
		case 'r': run = optarg; break;
		case 'o': out = optarg; break;
		case 'L': keep_log = optarg; break;
		case 'R': running = true; break;
		case 'U': uml_kernel = optarg; break;
		case 'S':
			if (su.n == CREATE_SETUP_MAX || optarg[0] == '\0' ||
			    strlen(optarg) > 4096)
				return cli_usage("snapshot create", "--setup: "
						 "at most 16 commands, each "
						 "1..4096 bytes");
			su.cmd[su.n++] = optarg;
			break;
		case 'F': su.files = optarg; break;
		case 'm':
			if (cli_parse_u64(optarg, 16, 65536, &mem) < 0)
				return cli_usage("snapshot create",
						 "--mem must be 16..65536 (MB)");
			break;
		case 't':
			if (cli_parse_u64(optarg, 1, 86400, &timeout_s) < 0)
				return cli_usage("snapshot create",
						 "--timeout must be 1..86400");
			break;
		case 'h': fputs(create_help, stdout); return 0;
		default: return cli_usage("snapshot create", "bad option");
		}
	}
	if (kernel == NULL && !running)
		kernel = FED_UML_KERNEL;
	kernel_boot = kernel;
	if (!kernel || !base || !files || !run || !so.service ||
	    !so.guest_port || !so.key || !out || optind != argc)
		return cli_usage("snapshot create", "--base, --files, --run, "
				 "--service, --guest-port, --key and -o are "
				 "required (and --kernel with --running)");
	if (mem == 0)
		mem = running ? 128 : 64;
	if (running && mem > 4096)
		return cli_usage("snapshot create", "--mem must be at most 4096 "
				 "with --running");
	if (stat(files, &sb) < 0 || !S_ISDIR(sb.st_mode))
		return cli_fail("--files %s: not a directory", files);
	if (su.files != NULL && su.n == 0)
		return cli_usage("snapshot create",
				 "--setup-files needs --setup");
	if (su.files != NULL &&
	    (stat(su.files, &sb) < 0 || !S_ISDIR(sb.st_mode)))
		return cli_fail("--setup-files %s: not a directory", su.files);
	if (realpath(base, base_abs) == NULL)
		return cli_fail("base %s: %m", base);
	if (snap_manifest_fill(&so, &m, seed) != 0)
		goto bad;
	if (create_hash(kernel, m.kernel, &e) < 0 ||
	    create_hash(base_abs, m.base, &e) < 0) {
		cli_fail("%s", e.msg);
		goto bad;
	}

	snprintf(tmp, sizeof(tmp), "%s/fed-create.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tmp) == NULL) {
		cli_fail("temporary directory %s: %m", tmp);
		tmp[0] = '\0';
		goto bad;
	}
	snprintf(disk, sizeof(disk), "%s/import.img", tmp);
	snprintf(cow, sizeof(cow), "%s/disk.cow", tmp);
	if (create_import_disk(tmp, files, run, &su, disk, &e) < 0) {
		cli_fail("%s", e.msg);
		goto bad;
	}
	/* a kernel that is not executable here (read from fedfs, say) is
	 * copied: its hash was taken above, the copy is what boots */
	if (running)
		kernel_boot = uml_kernel;
	snprintf(kexec, sizeof(kexec), "%s", kernel_boot);
	if (access(kernel_boot, X_OK) < 0) {
		char *cp[] = { "cp", (char *)kernel_boot, kexec, NULL };

		snprintf(kexec, sizeof(kexec), "%s/linux.uml", tmp);
		if (proc_run(cp, -1, STDERR_FILENO) != 0 ||
		    chmod(kexec, 0755) < 0) {
			cli_fail("cannot make an executable copy of %s",
				 kernel_boot);
			goto bad;
		}
	}
	if (create_boot(kexec, cow, base_abs, disk, running ? 64 : (unsigned)mem,
			(unsigned)timeout_s, &log, why) < 0) {
		cli_fail("import boot: %s", why);
		goto bad;
	}
	if (running) {
		struct create_running a = {
			.kernel = kernel, .base = base_abs, .cow = cow,
			.tmpdir = tmp, .out = out, .seed = seed,
			.mem_mb = (unsigned)mem, .timeout_s = (unsigned)timeout_s,
			.chunk_size = (uint32_t)so.chunk_size, .json = so.json,
		};

		free(log);
		log = NULL;
		rc = create_running(&a, &m, &log);
	} else {
		struct snap_pack p = {
			.cow = cow, .base = base_abs, .out = out, .seed = seed,
			.chunk_size = (uint32_t)so.chunk_size, .json = so.json,
			.temp_cow = true,
		};

		rc = snap_pack_write(&p, &m);
	}
bad:
	if (keep_log != NULL && log != NULL) {
		FILE *f = fopen(keep_log, "w");

		if (f != NULL) {
			fputs(log, f);
			fclose(f);
		}
	}
	free(log);
	create_cleanup(tmp);
	explicit_bzero(seed, sizeof(seed));
	manifest_free(&m);
	return rc;
}
