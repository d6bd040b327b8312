/*
 * umlargv.c - the command line of a UML machine (machine.h): the kernel,
 * its disk (a COW over a read-only base), its memory, its console on fd 1,
 * its one network device (a tap in its own namespace) and where UML keeps
 * its own files; and the names of the machine kinds.  Pure: unit tests
 * check it without booting anything.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "machine/machine.h"

const char *
machine_kind_name(enum machine_kind k)
{
	return k == MACHINE_QEMU ? "qemu" : "uml";
}

int
machine_kind_parse(const char *name, enum machine_kind *k)
{
	if (strcmp(name, "uml") == 0)
		*k = MACHINE_UML;
	else if (strcmp(name, "qemu") == 0)
		*k = MACHINE_QEMU;
	else
		return -1;
	return 0;
}

void
uml_argv_free(char **argv)
{
	if (argv == NULL)
		return;
	for (char **a = argv; *a != NULL; a++)
		free(*a);
	free(argv);
}

char **
uml_argv(const struct uml_params *p)
{
	char **argv;
	int n = 0, ok = 1;

	if (!p->kernel || !p->cow || !p->base || !p->hostfs || p->mem_mb == 0)
		return NULL;
	if (p->tap && (!p->guest_addr || !p->gateway || !p->prefix))
		return NULL;
	if ((argv = calloc(20, sizeof(*argv))) == NULL)
		return NULL;
#define ADD(...) do { if (asprintf(&argv[n], __VA_ARGS__) < 0) { argv[n] = NULL; ok = 0; } else n++; } while (0)
	ADD("%s", p->kernel);
	ADD("ubd0=%s,%s", p->cow, p->base);
	ADD("root=/dev/ubda");
	ADD("rw");
	ADD("init=/init");
	ADD("mem=%uM", p->mem_mb);
	ADD("con=null");
	ADD("con0=null,fd:1");
	/* boot time: no serial lines, no BSD ptys (allocating 256 of them
	 * took 0.7-2.4 s of a 2-6 s boot, measured with initcall_debug) */
	ADD("ssl=null");
	ADD("pty.legacy_count=0");
	ADD("quiet");
	if (ok && p->tap) {
		ADD("vec0:transport=tap,ifname=%s", p->tap);
		ADD("fed.ip=%s/%u", p->guest_addr, p->prefix);
		ADD("fed.gw=%s", p->gateway);
	}
	ADD("hostfs=%s", p->hostfs);
	if (ok && p->uml_dir)
		ADD("uml_dir=%s", p->uml_dir);
#undef ADD
	if (!ok) {
		uml_argv_free(argv);
		return NULL;
	}
	return argv;
}
