/*
 * fault.c - deterministic fault injection for tests; see fault.h.
 */
#include "config.h"

#include "lib/fault.h"

#ifdef SLUICE_FAULT_INJECTION
#include <stdlib.h>
#include <string.h>

#define FAULT_MAX 16

static struct {
	bool loaded;
	unsigned n;
	struct {
		char name[32];
		unsigned long every, calls;
	} f[FAULT_MAX];
} faults;

static void
fault_load(void)
{
	const char *env = getenv("SLUICE_FAULTS");

	faults.loaded = true;
	while (env && *env && faults.n < FAULT_MAX) {
		const char *colon = strchr(env, ':'), *comma = strchr(env, ',');
		size_t len;

		if (!colon || (comma && comma < colon))
			break;
		len = (size_t)(colon - env);
		if (len >= sizeof(faults.f[0].name))
			len = sizeof(faults.f[0].name) - 1;
		memcpy(faults.f[faults.n].name, env, len);
		faults.f[faults.n].name[len] = '\0';
		faults.f[faults.n].every = strtoul(colon + 1, NULL, 10);
		if (faults.f[faults.n].every > 0)
			faults.n++;
		env = comma ? comma + 1 : NULL;
	}
}

/* Should the operation named `name` fail this time? */
bool
fault_fail(const char *name)
{
	if (!faults.loaded)
		fault_load();
	for (unsigned i = 0; i < faults.n; i++)
		if (strcmp(faults.f[i].name, name) == 0)
			return ++faults.f[i].calls % faults.f[i].every == 0;
	return false;
}
#endif
