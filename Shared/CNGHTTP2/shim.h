#ifndef DOORSTEP_CNGHTTP2_SHIM_H
#define DOORSTEP_CNGHTTP2_SHIM_H

// libnghttp2, Debian package libnghttp2-dev (pkg-config name: libnghttp2).
#if __has_include(<nghttp2/nghttp2.h>)
#include <nghttp2/nghttp2.h>
#else
#error "libnghttp2 headers not found: install the Debian package libnghttp2-dev (apt-get install libnghttp2-dev)"
#endif

#endif
