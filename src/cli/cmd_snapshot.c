/*
 * cmd_snapshot.c - `fed snapshot pack|verify|inspect|unpack`.
 *
 * pack:    UML COW file over a base -> signed .fedsnap holding only the
 *          sectors that differ from the base
 * verify:  header, manifest, owner's signature, every chunk; exit 0 iff valid
 * inspect: the manifest (and id) of a snapshot, for people or as JSON
 * unpack:  .fedsnap + local base -> a UML COW file that UML boots
 */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/delta.h"
#include "common/fedsnap.h"
#include "common/hex.h"
#include "common/keyfile.h"

static const char snapshot_help[] =
	"usage: fed snapshot create|pack|verify|inspect|unpack ... (each has --help)\n"
	"\n"
	"  create   boot the base, import files and a service command, pack\n"
	"  pack     make a signed delta snapshot from a UML copy-on-write file\n"
	"  verify   check a snapshot's signature and every chunk (exit status)\n"
	"  inspect  print a snapshot's manifest\n"
	"  unpack   rebuild the UML copy-on-write file from a snapshot\n";

static const char pack_help[] =
	"usage: fed snapshot pack --base IMG --cow COW --service HOST:PORT\n"
	"           --guest-port N --kernel-hash SHA256 --key KEYFILE -o OUT\n"
	"           [--name NAME] [--version N] [--chunk-size BYTES]\n"
	"           [--egress PROTO/PORT]... [--json]\n"
	"\n"
	"Turn a UML copy-on-write file over the base image IMG into a signed\n"
	"delta snapshot OUT holding only the sectors that differ from the base,\n"
	"zlib-compressed and cut into SHA-256-indexed chunks.  The manifest\n"
	"names the base (by hash), the kernel (--kernel-hash), the service and\n"
	"the guest port; KEYFILE's owner signs it.\n"
	"\n"
	"  --name NAME        snapshot name (default: the service host)\n"
	"  --version N        newer versions of a service win (default: the\n"
	"                     current Unix time, so a later pack is newer)\n"
	"  --chunk-size BYTES power of two, 4 KiB..16 MiB (default 1 MiB)\n"
	"  --egress PROTO/PORT ask peers to let the guest open connections to\n"
	"                     public addresses on that port (tcp/443, udp/53;\n"
	"                     repeatable).  Each peer decides what it lends\n"
	"                     (fed-vmrunner --egress-allow); by default a guest\n"
	"                     opens no connection at all\n";

static void
print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_COMPACT | JSON_SORT_KEYS);
	putchar('\n');
}

/* ---- what pack and create share ---- */

void
snap_opts_init(struct snap_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->version = (uint64_t)time(NULL);
	o->chunk_size = CHUNK_SIZE_DEFAULT;
}

int
snap_opt(struct snap_opts *o, int ch, const char *cmd)
{
	switch (ch) {
	case 's': o->service = optarg; return 1;
	case 'K': o->key = optarg; return 1;
	case 'n': o->name = optarg; return 1;
	case 'j': o->json = true; return 1;
	case 'g':
		if (cli_parse_u64(optarg, 1, 65535, &o->guest_port) < 0)
			return cli_usage(cmd, "--guest-port must be 1..65535");
		return 1;
	case 'v':
		if (cli_parse_u64(optarg, 1, MANIFEST_VERSION_MAX,
				  &o->version) < 0)
			return cli_usage(cmd, "--version must be a positive "
					 "integer");
		return 1;
	case 'E': {	/* repeatable, each a word or a list */
		struct egress more;
		struct err e;

		if (egress_parse_list(optarg, &more, &e) < 0)
			return cli_usage(cmd, "%s", e.msg);
		for (unsigned i = 0; i < more.n; i++)
			if (egress_add(&o->egress, &more.r[i], &e) < 0)
				return cli_usage(cmd, "%s", e.msg);
		return 1;
	}
	case 'C':
		if (cli_parse_u64(optarg, 1, UINT32_MAX, &o->chunk_size) < 0 ||
		    !chunkidx_valid_chunk_size(o->chunk_size))
			return cli_usage(cmd, "--chunk-size must be a power of "
					 "two, 4096..16777216");
		return 1;
	default:
		return 0;
	}
}

int
snap_manifest_fill(const struct snap_opts *o, struct manifest *m,
		   uint8_t seed[ED25519_SEED_LEN])
{
	const char *name = o->name;
	struct err e;

	if (service_parse(o->service, m->host, &m->port, &e) < 0)
		return cli_fail("%s", e.msg);
	if (keyfile_load(o->key, seed, m->owner, &e) < 0)
		return cli_fail("%s", e.msg);
	if (name == NULL)	/* a host longer than a name: cut at a label */
		name = strlen(m->host) <= MANIFEST_NAME_MAX ? m->host
							    : "service";
	if (strlen(name) > MANIFEST_NAME_MAX)
		return cli_fail("--name is longer than %d characters",
				MANIFEST_NAME_MAX);
	memcpy(m->name, name, strlen(name) + 1);
	rfc3339_format(time(NULL), m->created);
	m->version = (int64_t)o->version;
	m->guest_port = (uint16_t)o->guest_port;
	m->egress = o->egress;
	snprintf(m->machine, sizeof(m->machine), "uml");
	snprintf(m->format, sizeof(m->format), "%s", DELTA_FORMAT_FEDCOW1);
	return 0;
}

int
snap_pack_write(const struct snap_pack *p, struct manifest *m)
{
	uint8_t id[SHA256_LEN];
	char idhex[2 * SHA256_LEN + 1], tmpl[PATH_MAX], b1[32], b2[32], b3[32];
	struct delta_stats st;
	struct err e;
	int cow_fd = -1, base_fd = -1, tmp_fd = -1, rc = 1;

	if ((base_fd = open(p->base, O_RDONLY | O_CLOEXEC)) < 0) {
		cli_fail("base %s: %m", p->base);
		goto done;
	}
	if ((cow_fd = open(p->cow, O_RDONLY | O_CLOEXEC)) < 0) {
		cli_fail("COW file %s: %m", p->cow);
		goto done;
	}
	if (p->hash_base && sha256_fd(base_fd, m->base, &e) < 0) {
		cli_fail("base %s: %s", p->base, e.msg);
		goto done;
	}
	/* the payload goes to a temporary file: the manifest that precedes
	 * it in the snapshot needs its chunk hashes first */
	snprintf(tmpl, sizeof(tmpl), "%s.payload.XXXXXX", p->out);
	if ((tmp_fd = mkstemp(tmpl)) < 0) {
		cli_fail("temporary file %s: %m", tmpl);
		goto done;
	}
	unlink(tmpl);
	if (delta_pack(cow_fd, base_fd, tmp_fd, p->chunk_size, &m->delta, &st,
		       &e) < 0) {
		if (p->temp_cow)
			cli_fail("pack: %s", e.msg);
		else
			cli_fail("pack %s: %s", p->cow, e.msg);
		goto done;
	}
	if (fedsnap_write(p->out, m, p->seed, tmp_fd, id, &e) < 0) {
		cli_fail("write %s: %s", p->out, e.msg);
		goto done;
	}
	hex_encode(id, SHA256_LEN, idhex);
	if (p->json) {
		json_t *j = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:i,s:s}",
				      "id", idhex, "file", p->out,
				      "version", (json_int_t)m->version,
				      "image_size", (json_int_t)st.image_size,
				      "changed_bytes", (json_int_t)st.changed_bytes,
				      "payload_bytes", (json_int_t)st.payload_bytes,
				      "extents", (int)st.extents,
				      "name", m->name);
		print_json(j);
		json_decref(j);
	} else {
		printf("%s: %s:%u version %" PRId64 ", %s delta (%u extents, %s "
		       "changed) over a %s base\nid %s\n", p->out, m->host,
		       m->port, m->version, cli_bytes(st.payload_bytes, b1),
		       st.extents, cli_bytes(st.changed_bytes, b2),
		       cli_bytes(st.image_size, b3), idhex);
	}
	rc = 0;
done:
	if (tmp_fd >= 0)
		close(tmp_fd);
	if (cow_fd >= 0)
		close(cow_fd);
	if (base_fd >= 0)
		close(base_fd);
	return rc;
}

/* ---- fed snapshot pack ---- */

static int
snapshot_pack(int argc, char **argv)
{
	static const struct option opts[] = {
		SNAP_LONG_OPTS,
		{ "base", required_argument, NULL, 'b' },
		{ "cow", required_argument, NULL, 'c' },
		{ "kernel-hash", required_argument, NULL, 'k' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *base = NULL, *cow = NULL, *kernel = NULL, *out = NULL;
	uint8_t seed[ED25519_SEED_LEN];
	struct snap_opts so;
	struct snap_pack p;
	struct manifest m;
	int c, r, rc;

	memset(&m, 0, sizeof(m));
	snap_opts_init(&so);
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		if ((r = snap_opt(&so, c, "snapshot pack")) == 1)
			continue;
		if (r != 0)
			return r;
		switch (c) {
		case 'b': base = optarg; break;
		case 'c': cow = optarg; break;
		case 'k': kernel = optarg; break;
		case 'o': out = optarg; break;
		case 'h': fputs(pack_help, stdout); return 0;
		default: return cli_usage("snapshot pack", "bad option");
		}
	}
	if (!base || !cow || !so.service || !so.guest_port || !kernel ||
	    !so.key || !out || optind != argc)
		return cli_usage("snapshot pack", "--base, --cow, --service, "
				 "--guest-port, --kernel-hash, --key and -o are "
				 "required");
	if (!hex_is_sha256(kernel))
		return cli_fail("--kernel-hash must be 64 lower-case hex digits");
	if (snap_manifest_fill(&so, &m, seed) != 0)
		return 1;
	hex_decode(kernel, m.kernel, SHA256_LEN);
	p = (struct snap_pack){
		.cow = cow, .base = base, .out = out, .seed = seed,
		.chunk_size = (uint32_t)so.chunk_size, .json = so.json,
		.hash_base = true,
	};
	rc = snap_pack_write(&p, &m);
	explicit_bzero(seed, sizeof(seed));
	manifest_free(&m);
	return rc;
}

/*
 * The command line of verify and inspect: one FILE, --json, --help.
 * Returns -1 with *file and *json set when the command goes on, else the
 * exit status (0 after --help).
 */
static int
snap_file_args(int argc, char **argv, const char *cmd, const char *help,
	       const char **file, bool *json)
{
	*file = NULL;
	*json = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			fputs(help, stdout);
			return 0;
		} else if (strcmp(argv[i], "--json") == 0) {
			*json = true;
		} else if (*file == NULL && argv[i][0] != '-') {
			*file = argv[i];
		} else {
			return cli_usage(cmd, "unexpected '%s'", argv[i]);
		}
	}
	if (*file == NULL)
		return cli_usage(cmd, "need a FILE");
	return -1;
}

static const char verify_help[] =
	"usage: fed snapshot verify FILE [--json]\n"
	"\n"
	"Check a snapshot: format, canonical manifest, the owner's signature and\n"
	"every chunk's SHA-256.  Exit status 0 iff all hold; otherwise one line\n"
	"on stderr says what is wrong.  (Whether the owner is registered and the\n"
	"base and kernel are trusted is the authority's to say: fedfs and the\n"
	"vmrunner check that too.)\n";

static int
snapshot_verify(int argc, char **argv)
{
	struct fedsnap s;
	struct err e;
	char idhex[2 * SHA256_LEN + 1];
	bool json;
	const char *file;
	int rc;

	if ((rc = snap_file_args(argc, argv, "snapshot verify", verify_help,
				 &file, &json)) != -1)
		return rc;
	if (fedsnap_open(file, &s, &e) < 0 || fedsnap_verify_payload(&s, &e) < 0) {
		if (s.fd >= 0)
			fedsnap_close(&s);
		if (json) {
			json_t *j = json_pack("{s:b,s:s}", "valid", 0, "error",
					      e.msg);

			print_json(j);
			json_decref(j);
		}
		return cli_fail("%s: %s", file, e.msg);
	}
	hex_encode(s.id, SHA256_LEN, idhex);
	if (json) {
		json_t *j = json_pack("{s:b,s:s,s:I}", "valid", 1, "id", idhex,
				      "version", (json_int_t)s.m.version);

		print_json(j);
		json_decref(j);
	} else {
		printf("%s: valid, id %s, %s:%u version %" PRId64 ", %u chunks\n",
		       file, idhex, s.m.host, s.m.port, s.m.version,
		       s.m.delta.nchunks);
	}
	fedsnap_close(&s);
	return 0;
}

static const char inspect_help[] =
	"usage: fed snapshot inspect FILE [--json]\n"
	"\n"
	"Print a snapshot's id and manifest after checking its signature (the\n"
	"payload is not read: use verify for that).  --json prints\n"
	"{\"id\":..,\"manifest\":{..}}.\n";

static int
snapshot_inspect(int argc, char **argv)
{
	struct fedsnap s;
	struct err e;
	char idhex[2 * SHA256_LEN + 1], owner[2 * ED25519_PUB_LEN + 1],
	     b1[32];
	bool json;
	const char *file;
	int rc;

	if ((rc = snap_file_args(argc, argv, "snapshot inspect", inspect_help,
				 &file, &json)) != -1)
		return rc;
	if (fedsnap_open(file, &s, &e) < 0)
		return cli_fail("%s: %s", file, e.msg);
	hex_encode(s.id, SHA256_LEN, idhex);
	if (json) {
		json_t *j = json_pack("{s:s,s:o}", "id", idhex, "manifest",
				      manifest_to_json(&s.m));

		print_json(j);
		json_decref(j);
	} else {
		hex_encode(s.m.owner, ED25519_PUB_LEN, owner);
		printf("id       %s\nname     %s\nservice  %s:%u (guest port %u)\n"
		       "version  %" PRId64 "\ncreated  %s\nowner    %s\n"
		       "machine  %s\ndelta    %s, %s in %u chunks of %u\n",
		       idhex, s.m.name, s.m.host, s.m.port, s.m.guest_port,
		       s.m.version, s.m.created, owner, s.m.machine, s.m.format,
		       cli_bytes(s.m.delta.size, b1), s.m.delta.nchunks,
		       s.m.delta.chunk_size);
		hex_encode(s.m.base, SHA256_LEN, owner);
		printf("base     %s\n", owner);
		hex_encode(s.m.kernel, SHA256_LEN, owner);
		printf("kernel   %s\n", owner);
	}
	fedsnap_close(&s);
	return 0;
}

static const char unpack_help[] =
	"usage: fed snapshot unpack FILE --base IMG -o COW [--json]\n"
	"\n"
	"Rebuild the UML copy-on-write file of a snapshot over the local base\n"
	"IMG (which must be the base the snapshot names, by SHA-256).  Every\n"
	"chunk is verified before a byte of it is used; the COW file appears\n"
	"only when complete.  Boot it with: linux.uml ubd0=COW,IMG ...\n";

static int
snapshot_unpack(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "base", required_argument, NULL, 'b' },
		{ "output", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *base = NULL, *out = NULL, *file;
	char base_abs[PATH_MAX], b1[32];
	uint8_t base_hash[SHA256_LEN];
	struct delta_stats st;
	struct fedsnap s;
	struct err e;
	bool json = false;
	int c, fd, rc = 1;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'b': base = optarg; break;
		case 'o': out = optarg; break;
		case 'j': json = true; break;
		case 'h': fputs(unpack_help, stdout); return 0;
		default: return cli_usage("snapshot unpack", "bad option");
		}
	}
	if (!base || !out || optind != argc - 1)
		return cli_usage("snapshot unpack", "need FILE, --base and -o");
	file = argv[optind];
	if (realpath(base, base_abs) == NULL)
		return cli_fail("base %s: %m", base);
	if ((fd = open(base_abs, O_RDONLY | O_CLOEXEC)) < 0)
		return cli_fail("base %s: %m", base);
	if (sha256_fd(fd, base_hash, &e) < 0) {
		close(fd);
		return cli_fail("base %s: %s", base, e.msg);
	}
	close(fd);
	if (fedsnap_open(file, &s, &e) < 0)
		return cli_fail("%s: %s", file, e.msg);
	if (fedsnap_check_length(&s, &e) < 0) {
		cli_fail("%s: %s", file, e.msg);
		goto done;
	}
	if (memcmp(base_hash, s.m.base, SHA256_LEN) != 0) {
		cli_fail("%s: made over another base than %s (SHA-256 differs)",
			 file, base);
		goto done;
	}
	if (strcmp(s.m.machine, "uml") != 0) {
		cli_fail("%s: a running-state (%s) snapshot: unpack makes UML COW "
			 "files only", file, s.m.machine);
		goto done;
	}
	if (delta_unpack(s.fd, s.payload_offset, &s.m.delta, base_abs, out, &st,
			 &e) < 0) {
		cli_fail("%s: %s", file, e.msg);
		goto done;
	}
	if (json) {
		json_t *j = json_pack("{s:s,s:s,s:I,s:i}", "cow", out, "base",
				      base_abs, "changed_bytes",
				      (json_int_t)st.changed_bytes, "extents",
				      (int)st.extents);

		print_json(j);
		json_decref(j);
	} else {
		printf("%s: %s in %u extents over %s\n", out,
		       cli_bytes(st.changed_bytes, b1), st.extents, base_abs);
	}
	rc = 0;
done:
	fedsnap_close(&s);
	return rc;
}

int
cmd_snapshot(int argc, char **argv)
{
	static const struct cli_command sub[] = {
		{ "create", cmd_snapshot_create, NULL },
		{ "pack", snapshot_pack, NULL },
		{ "verify", snapshot_verify, NULL },
		{ "inspect", snapshot_inspect, NULL },
		{ "unpack", snapshot_unpack, NULL },
	};

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		fputs(snapshot_help, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++)
		if (strcmp(argv[1], sub[i].name) == 0)
			return sub[i].run(argc - 1, argv + 1);
	return cli_usage("snapshot", "unknown subcommand '%s'", argv[1]);
}
