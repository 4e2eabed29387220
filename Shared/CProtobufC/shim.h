#ifndef DOORSTEP_CPROTOBUFC_SHIM_H
#define DOORSTEP_CPROTOBUFC_SHIM_H

// libprotobuf-c, Debian package libprotobuf-c-dev (pkg-config name: libprotobuf-c).
#if __has_include(<protobuf-c/protobuf-c.h>)
#include <protobuf-c/protobuf-c.h>
#else
#error "libprotobuf-c headers not found: install the Debian package libprotobuf-c-dev (apt-get install libprotobuf-c-dev)"
#endif

#endif
