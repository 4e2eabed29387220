#ifndef DOORSTEP_CLIBFUZZER_SHIM_H
#define DOORSTEP_CLIBFUZZER_SHIM_H

#include <stddef.h>
#include <stdint.h>

// libFuzzer's driver for programs that own `main` (https://llvm.org/docs/LibFuzzer.html,
// "Using libFuzzer as a library"). SwiftPM names an executable's entry point
// `<Module>_main` on Linux, so the fuzz target calls this instead of relying on
// libFuzzer's own `main`. Declared here because libFuzzer ships no header for it; the
// symbol exists only in binaries built with -sanitize=fuzzer.
int LLVMFuzzerRunDriver(int *argc, char ***argv,
                        int (*callback)(const uint8_t *data, size_t size));

#endif
