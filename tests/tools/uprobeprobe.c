/* uprobeprobe.c - prints the verdict of the uprobe ctx->ip write probe (redirect mechanism a).
 *
 *   uprobeprobe [-v]
 *
 * Why: an integration test shows which redirect mechanism this kernel allows, with the
 * kernel's reason, without the daemon. Output, one line:
 *   "supported: write to ctx->ip accepted"
 *   "unsupported: write to ctx->ip refused: <verifier's reason>"
 *   "error: cannot load a uprobe program: <error>"
 * Exit 0 on a verdict (either), 1 when the probe could not run, 2 on usage. -v shows libbpf's
 * output. Mechanism a is not exercised on the development hosts: their kernel refuses it.
 */
#include <bpf/libbpf.h>
#include <stdio.h>
#include <string.h>

#include "redirect/uprobe.h"

static int quiet_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return 0;
}

int main(int argc, char **argv)
{
	char why[512];
	int r;

	if (argc > 2 || (argc == 2 && strcmp(argv[1], "-v"))) {
		fprintf(stderr, "usage: uprobeprobe [-v]\n");
		return 2;
	}
	if (argc == 1)
		libbpf_set_print(quiet_libbpf);
	r = redir_uprobe_probe(why, sizeof(why));
	printf("%s: %s\n", r > 0 ? "supported" : r == 0 ? "unsupported" : "error", why);
	return r < 0 ? 1 : 0;
}
