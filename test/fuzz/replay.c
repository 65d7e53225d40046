/* Replay every kept corpus file through its fuzz target (TAP output).
 * Run from the repository root: test/fuzz/corpus/MODE/FILE. A crash or a
 * sanitizer report fails the run; surviving a file is one passing point. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tap.h"

#define CORPUS "test/fuzz/corpus"

static int replay_file(const char *path)
{
	static unsigned char buf[4 << 20];
	FILE *f = fopen(path, "rb");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	return 0;
}

static void replay_mode(const char *mode)
{
	char dir[256], path[512];
	struct dirent **names;
	int n;

	snprintf(dir, sizeof(dir), CORPUS "/%s", mode);
	n = scandir(dir, &names, NULL, alphasort);
	TAP_OK(n > 2, "%s corpus exists", dir);
	te_fuzz_set_mode(mode);
	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
			TAP_OK(replay_file(path) == 0, "%s survives", path);
		}
		free(names[i]);
	}
	free(names);
}

int main(void)
{
	replay_mode("json");
	replay_mode("config");
	replay_mode("manifest");
	replay_mode("patch");
	replay_mode("record");
	replay_mode("ctl");
	replay_mode("ring");
	replay_mode("route");
	replay_mode("stdio");
	replay_mode("mqtt");
	replay_mode("azure");
	replay_mode("twin");
	replay_mode("methods");
	replay_mode("http");
	replay_mode("request");
	return tap_done();
}
