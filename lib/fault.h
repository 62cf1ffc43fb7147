/*
 * fault.h - deterministic fault injection for tests (HOSTILE F16).
 *
 * Built only with ./configure --enable-fault-injection (the test build);
 * in any other build fault_fail() is the constant false and costs
 * nothing.  With it, the environment variable SLUICE_FAULTS, e.g.
 * "req_alloc:3,pipe:1", makes fault_fail("req_alloc") true on every 3rd
 * call and fault_fail("pipe") on every call, so a test can drive the
 * paths taken when memory, descriptors or pipes run out.
 *
 * The table of armed faults is the one process-wide mutable state
 * outside the per-process structs: it exists only in test builds and is
 * read-only after its first use.
 */
#ifndef SLUICE_FAULT_H
#define SLUICE_FAULT_H

#include <stdbool.h>

#ifdef SLUICE_FAULT_INJECTION
/* Should the operation named `name` fail this time? */
bool fault_fail(const char *name);
#else
static inline bool fault_fail(const char *name) { (void)name; return false; }
#endif

#endif
